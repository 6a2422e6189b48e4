"""The explain stage: EK-FAC influence (Grosse et al. 2023) of the SL-CAI (and DPO) training examples on the trained
policy's replies whose harmlessness changed most between the base model and the policy.

The training sequences are the rows the SL-CAI stage trained on (``sft.jsonl``: prompt + revision, rendered in
the conversation format they were trained in) and, when RL was DPO, each pair's prompt + chosen and prompt +
rejected reply (``source`` names which); the queries are the policy's replies to the most-changed attacks,
``f = -log p(reply | attack)`` under the policy. Factors are fitted and queries scored on the final policy (the
model whose replies are explained), as Grosse et al. do for the final model. Two sub-runs: ``explain/fit`` and
``explain/query`` (each resumes on its own).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from alignlab.loop.paired import most_changed, scored
from alignlab.loop.stages import Context, build
from alignlab.loop.subruns import sub_run
from alignlab.models.types import Conversation, Message


def training_texts(sft_jsonl: Path, render: Any) -> list[str]:
    """Each SFT row as the text it was trained on: a string prompt + completion, or conversational rows (lists of
    messages) rendered by ``render(messages) -> prompt text``."""
    texts = []
    for line in sft_jsonl.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            texts.append(joined(row["prompt"], row["completion"], render))
    return texts


def training_rows(sft_jsonl: Path, render: Any, dpo_pairs: list[dict[str, Any]] | None = None
                  ) -> list[dict[str, Any]]:
    """The explain stage's training sequences, each with its ``source``: every SL-CAI row, then, when the policy
    was trained with DPO, each pair's prompt + chosen and prompt + rejected reply (DPO's loss moves both)."""
    rows = [{"text": text, "source": "sl-cai"} for text in training_texts(sft_jsonl, render)]
    for number, pair in enumerate(dpo_pairs or []):
        rows += [{"text": joined(pair["prompt"], pair[side], render), "source": f"dpo {side}", "pair": number}
                 for side in ("chosen", "rejected")]
    return rows


def joined(prompt: Any, completion: Any, render: Any) -> str:
    """A training row's prompt and completion as one text (message lists rendered, as the trainer saw them)."""
    if isinstance(prompt, list):
        prompt = render([Message(m["role"], m["content"]) for m in prompt])
    if isinstance(completion, list):
        completion = "".join(m["content"] for m in completion)
    return str(prompt) + str(completion)


def dpo_pairs(ctx: Context) -> list[dict[str, Any]]:
    """The pairs the loop's DPO stage trained on (its saved config: pairs file, limit), in the loop's format; none
    when the policy was not trained with DPO."""
    if ctx.config.rl_method != "dpo":
        return []
    from alignlab.constitution.train_rl import dpo_rows
    from alignlab.runs.run import Run

    study = Run.read_manifest(ctx.runs["rl"])["config"]["study"]
    return dpo_rows(study["pairs"], study.get("limit"), ctx.prompt_format)  # type: ignore[arg-type]


def queries(ctx: Context, top: int) -> list[dict[str, Any]]:
    """The ``top`` most-changed attacks (fixed scorer, before vs after) with a non-empty policy reply."""
    before, _ = scored(ctx.runs["redteam_before"], ctx.scorer())
    after, _ = scored(ctx.runs["redteam_after"], ctx.scorer())
    changed = [q for q in most_changed(before, after, len(after)) if q["reply"].strip()]
    return changed[:top]


def explain(ctx: Context, folder: Path) -> Path:
    """Fit EK-FAC factors of the policy on the SFT rows, then score the most-changed replies; returns the query
    run (its manifest names the fit run)."""
    from alignlab import influence
    from alignlab.models.spec import load_model

    c = ctx.config
    folder.mkdir(parents=True, exist_ok=True)
    picked = queries(ctx, c.explain_top)
    if not picked:
        raise ValueError("explain: no attack has a non-empty reply in both red-team runs")
    model = load_model(ctx.policy(), dtype=ctx.dtype, cache=False)
    try:
        def render(messages: list[Message]) -> str:
            return model.backend.render(Conversation(tuple(messages), format=ctx.prompt_format))  # type: ignore[arg-type]

        train = folder / "train.jsonl"
        if not train.is_file():
            _write(train, training_rows(ctx.runs["revise"] / "sft.jsonl", render, dpo_pairs(ctx)))
        query_file = folder / "queries.jsonl"
        if not query_file.is_file():
            _write(query_file, [{"prompt": render([Message(m["role"], m["content"]) for m in q["messages"]]),
                                 "completion": q["reply"], "attack_id": q["attack_id"], "target": q["target"],
                                 "before": q["before"], "after": q["after"], "reply_before": q["reply_before"]}
                                for q in picked])
        fit_config = build(influence.FitConfig, ctx, "explain", train=str(train), max_length=c.influence_max_length,
                           seed=c.seed)
        fit_dir = sub_run(folder / "fit", lambda out, resume: influence.fit(
            fit_config, model, out=out, resume=resume, progress=ctx.progress), resumable=True)
        query_config = influence.QueryConfig(fit=str(fit_dir), queries=str(query_file), top_k=3)
        return sub_run(folder / "query", lambda out, resume: influence.query(
            query_config, model, out=out, resume=resume, progress=ctx.progress), resumable=True)
    finally:
        model.close()


def _write(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
