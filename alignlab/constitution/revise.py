"""SL-CAI data (Bai et al. 2022 §3.1-3.2): sample a response to each red-team prompt, then N rounds of critique and
revision, a principle drawn uniformly and independently per prompt and round; revision k is critiqued at round k+1.

Generation is batched across prompts within a round (one model call per chunk of prompts per step) and every step is
appended to ``samples.jsonl`` as it completes, so an interrupted run resumes where it stopped (and the request cache
makes redone requests free). Outputs in the run directory:

- ``revisions.jsonl``: one row per prompt with the original response and every round (principle, critique, revision);
- ``sft.jsonl``: ``prompt``/``completion`` rows, the revision of every round (the paper trains on all rounds), plus
  helpfulness samples when helpfulness prompts are given;
- ``dpo.jsonl``: ``prompt``/``chosen``/``rejected`` = final revision vs original (the HF H4 recipe's pairs).

Every step talks to the model in the run's format (``--format``, see :mod:`alignlab.constitution.formats`), and
sft.jsonl/dpo.jsonl rows are written in it (TRL conversational messages for chat). With ``--scorer`` the originals
and final revisions are scored by the same harmlessness scorer (:mod:`alignlab.constitution.measures`).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

import numpy as np

from alignlab.constitution import prompts as P
from alignlab.constitution.config import ReviseConfig
from alignlab.constitution.constitutions import Constitution, CritiquePair, load_constitution, require
from alignlab.constitution.data import load_prompts, write_jsonl
from alignlab.constitution.formats import Format, pair_row, resume_format, sft_row, stops
from alignlab.constitution.measures import harmlessness_table, score_revisions
from alignlab.models.base import Model
from alignlab.models.types import GenerateParams, GenerateRequest
from alignlab.runs.results import result
from alignlab.runs.run import Run

SECTION = "revise"


def draw_principle(constitution: Constitution, seed: int, prompt_id: str, round_: int) -> CritiquePair:
    """Uniform and independent per (prompt, round); seeded, so a resumed run draws the same principle."""
    rng = np.random.default_rng([seed, zlib.crc32(prompt_id.encode()), round_])
    return constitution.critiques[int(rng.integers(len(constitution.critiques)))]


def _params(config: ReviseConfig, stop: tuple[str, ...], salt: str) -> GenerateParams:
    return GenerateParams(max_new_tokens=config.max_new_tokens, temperature=config.temperature, stop=stop,
                          seed=config.seed + zlib.crc32(salt.encode()) % 100_000)


def _record(model: Model, key: str, **fields: Any) -> dict[str, Any]:
    return {"section": SECTION, "model": model.spec, "key": key, **fields}


def _responses(model: Model, todo: list[tuple[str, str]], config: ReviseConfig, step: str,
               fmt: Format) -> list[dict[str, Any]]:
    requests = [GenerateRequest(P.response_prompt(q, fmt), _params(config, stops(fmt), pid)) for pid, q in todo]
    return [_record(model, f"{pid}|{step}", step=step, prompt_id=pid, question=q, text=res.text.strip(), format=fmt)
            for (pid, q), res in zip(todo, model.generate(requests), strict=True)]


def _round(model: Model, const: Constitution, todo: list[tuple[str, str, str]], round_: int,
           config: ReviseConfig, fmt: Format) -> list[dict[str, Any]]:
    """One critique + revision step for a chunk of (prompt id, question, current response): two batched calls."""
    pairs = [draw_principle(const, config.seed, pid, round_) for pid, _, _ in todo]
    contexts = [P.critique_prompt(q, resp, pair, config.few_shot, fmt)
                for (_, q, resp), pair in zip(todo, pairs, strict=True)]
    critiques = model.generate([GenerateRequest(c, _params(config, P.critique_stop(fmt), f"{pid}|c{round_}"))
                                for c, (pid, _, _) in zip(contexts, todo, strict=True)])
    revision_prompts = [P.revision_prompt(c, crit.text, pair) for c, crit, pair in zip(contexts, critiques, pairs,
                                                                                        strict=True)]
    revisions = model.generate([GenerateRequest(r, _params(config, P.revision_stop(fmt), f"{pid}|r{round_}"))
                                for r, (pid, _, _) in zip(revision_prompts, todo, strict=True)])
    out = []
    for (pid, q, resp), pair, crit, rev in zip(todo, pairs, critiques, revisions, strict=True):
        text = rev.text.strip()
        out.append(_record(model, f"{pid}|round{round_}", step="round", round=round_, prompt_id=pid, question=q,
                           previous=resp, principle=pair.id, critique_request=pair.critique,
                           critique=crit.text.strip(), revision_request=pair.revision, revision=text,
                           empty_revision=not text, format=fmt))
    return out


def run_revisions(run: Run, model: Model, config: ReviseConfig,
                  progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """Every missing step for every prompt, round by round, batched across prompts; returns the summary."""
    const = load_constitution(config.constitution)
    require(const, "critiques")
    items = load_prompts(config.prompts, data=config.data, limit=config.limit, seed=config.seed)
    helpful = load_prompts(config.helpful_prompts, limit=config.limit, seed=config.seed) \
        if config.helpful_prompts else []
    run.record_model(model)
    fmt = resume_format(run.samples(), SECTION, config.prompt_format, model)
    done = run.done_keys()
    total = len(items) * (config.rounds + 1) + len(helpful)
    count = len(done)

    def step(todo: list[Any], work: Callable[[list[Any]], list[dict[str, Any]]]) -> None:
        nonlocal count
        for start in range(0, len(todo), config.chunk_size):
            records = work(todo[start:start + config.chunk_size])
            run.append(records)
            count += len(records)
            if progress:
                progress("critique/revision", min(count, total), total)

    step([x for x in items if f"{x[0]}|response" not in done],
         lambda c: _responses(model, c, config, "response", fmt))
    step([x for x in helpful if f"{x[0]}|helpful" not in done],
         lambda c: _responses(model, c, config, "helpful", fmt))
    for round_ in range(1, config.rounds + 1):
        current = _current(run.samples())
        todo = [(pid, q, current[pid]) for pid, q in items if f"{pid}|round{round_}" not in done]
        step(todo, lambda c, r=round_: _round(model, const, c, r, config, fmt))
    if config.scorer:
        score_revisions(run, model, config.scorer, _finals(run.samples()), chunk_size=config.chunk_size)
    return write_outputs(run, config, model=model.spec)


def _current(samples: list[dict[str, Any]]) -> dict[str, str]:
    """The latest non-empty response per prompt: the original, or the last revision that said something."""
    current: dict[str, tuple[int, str]] = {}
    for s in samples:
        if s.get("section") != SECTION or s["step"] == "helpful":
            continue
        level, text = (0, s["text"]) if s["step"] == "response" else (s["round"], s["revision"])
        if text and level >= current.get(s["prompt_id"], (-1, ""))[0]:
            current[s["prompt_id"]] = (level, text)
    return {pid: text for pid, (_, text) in current.items()}


def _finals(samples: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    """(prompt id, question, original, final revision) of every prompt with a non-empty original and revision."""
    mine = [s for s in samples if s.get("section") == SECTION and s["step"] != "helpful"]
    finals: dict[str, tuple[int, str]] = {}
    for s in mine:
        if s["step"] == "round" and s["revision"] and s["round"] >= finals.get(s["prompt_id"], (0, ""))[0]:
            finals[s["prompt_id"]] = (s["round"], s["revision"])
    return [(s["prompt_id"], s["question"], s["text"], finals[s["prompt_id"]][1]) for s in mine
            if s["step"] == "response" and s["text"] and s["prompt_id"] in finals]


def write_outputs(run: Run, config: ReviseConfig, *, model: str | None = None) -> dict[str, Any]:
    """revisions.jsonl, sft.jsonl and dpo.jsonl from the samples; returns the summary (its results name
    ``model``, default: the model of the samples)."""
    every = run.samples()
    samples = [s for s in every if s.get("section") == SECTION]
    fmt: Format = next((s.get("format", "raw_hh") for s in samples), "raw_hh")
    rows: dict[str, dict[str, Any]] = {}
    sft, dpo = [], []
    for s in sorted(samples, key=lambda s: (s["step"] != "response", s.get("round", 0))):
        if s["step"] == "helpful":
            sft.append(sft_row(s["question"], s["text"], fmt, kind="helpful"))
            continue
        row = rows.setdefault(s["prompt_id"], {"prompt_id": s["prompt_id"], "question": s["question"], "rounds": []})
        if s["step"] == "response":
            row["response"] = s["text"]
        else:
            row["rounds"].append({k: s[k] for k in ("round", "principle", "critique_request", "critique",
                                                    "revision_request", "revision")})
            if s["revision"]:
                sft.append(sft_row(s["question"], s["revision"], fmt, kind="revision", round=s["round"]))
    for row in rows.values():
        final = next((r["revision"] for r in reversed(row["rounds"]) if r["revision"]), "")
        row["final"] = final
        if final and row.get("response") and final != row["response"]:
            dpo.append(pair_row(row["question"], final, row["response"], fmt, prompt_id=row["prompt_id"]))
    write_jsonl(run.path / "revisions.jsonl", list(rows.values()))
    write_jsonl(run.path / "sft.jsonl", sft)
    write_jsonl(run.path / "dpo.jsonl", dpo)
    spec = model or next((s["model"] for s in samples), "")
    summary = summarize(list(rows.values()), sft, dpo, config, model=spec, fmt=fmt)
    scored = harmlessness_table(every, seed=config.seed, model=spec)
    if scored:
        summary["headline"] += scored["headline"]
        summary["sections"][0]["tables"].insert(1, scored["table"])
        summary["results"] += scored["results"]
        summary["scorer"] = scored["scorer"]
    return summary


def summarize(rows: list[dict[str, Any]], sft: list[dict[str, Any]], dpo: list[dict[str, Any]],
              config: ReviseConfig, *, model: str = "", fmt: str = "raw_hh") -> dict[str, Any]:
    per_round = []
    results = [result(SECTION, "prompts", len(rows), model=model, n=len(rows)),
               result(SECTION, "sft_rows", len(sft), model=model, n=len(rows)),
               result(SECTION, "dpo_pairs", len(dpo), model=model, n=len(rows))]
    for r in range(1, config.rounds + 1):
        steps = [x for row in rows for x in row["rounds"] if x["round"] == r]
        if steps:
            chars, empty = float(np.mean([len(x["revision"]) for x in steps])), float(np.mean(
                [not x["revision"] for x in steps]))
            per_round.append([r, len(steps), round(chars, 1), round(empty, 3), len({x["principle"] for x in steps})])
            results += [result(f"{SECTION}/round{r}", "mean_revision_chars", chars, model=model, n=len(steps), round=r),
                        result(f"{SECTION}/round{r}", "empty_revision_rate", empty, model=model, n=len(steps),
                               round=r)]
    examples = [[row["question"][:200], row.get("response", "")[:200], row["final"][:200]] for row in rows[:5]]
    return {
        "title": f"Constitutional AI: critique/revision ({config.constitution})",
        "format": fmt,
        "headline": [{"label": "prompts", "value": len(rows)}, {"label": "format", "value": fmt},
                     {"label": "SFT rows", "value": len(sft)},
                     {"label": "DPO pairs (revision vs original)", "value": len(dpo)}],
        "sections": [{"id": SECTION, "title": "SL-CAI critique/revision (Bai et al. 2022 §3)",
                      "description": "Each round critiques the previous answer under a randomly drawn principle, "
                                     "then revises it. Files: revisions.jsonl, sft.jsonl, dpo.jsonl.",
                      "tables": [{"title": "Per round", "columns": ["round", "revisions", "mean chars",
                                                                     "empty rate", "principles used"],
                                  "rows": per_round},
                                 {"title": "Examples", "columns": ["prompt", "original", "final revision"],
                                  "rows": examples}],
                      "sample_columns": ["step", "round", "principle", "question", "critique", "revision"]}],
        "notes": ["A 135M model shows the pipeline working, not the paper's effect sizes (52B+)."],
        "config": config.as_dict(),
        "results": results,
    }
