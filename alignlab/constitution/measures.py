"""What each CAI stage did, measured (issue 19 "Stages are not measured").

- ``revise --scorer pm:<folder>|judge:<spec>``: the harmlessness of each original response and of its final
  revision under one scorer (the red team's :class:`~alignlab.redteam.scoring.PMScorer` or
  :class:`~alignlab.redteam.scoring.JudgeScorer`), each transcript ``Human: question / Assistant: reply``; the
  summary gives both means, the paired difference (revision − original) with a paired bootstrap 95% CI, and n.
  Scores are samples (``section: revise-score``), so a resumed run does not rescore.
- ``label``: position bias of the AI feedback (mean P(A); with ``--swap`` the mean P(first option) over both orders
  and the gap between the two orders' P(A)) and label spread (std of P(A), share within ±0.05 of 0.5).
- ``train-rl``: the relative L2 distance ‖θ_end − θ_start‖ / ‖θ_start‖ of the policy's weights.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from alignlab.metrics.stats import paired_bootstrap_ci
from alignlab.models.types import Message
from alignlab.runs.results import result
from alignlab.runs.run import Run

SCORE_SECTION = "revise-score"
NEAR_HALF = 0.05


def load_scorer(spec: str, model: Any) -> tuple[Any, Any]:
    """(scorer, model to close or None) for ``pm:<folder>`` or ``judge:<spec>`` (``model`` when it is the judge)."""
    from alignlab.constitution.formats import resolve_for_model
    from alignlab.redteam.scoring import JudgeScorer, PMScorer

    kind, _, target = spec.partition(":")
    if kind == "pm" and target:
        from alignlab.constitution.preference_model import PreferenceModel

        return PMScorer(PreferenceModel.load(target), spec), None
    if kind == "judge" and target:
        from alignlab.models.spec import load_model

        judge = model if target == getattr(model, "spec", None) else load_model(target)
        return JudgeScorer(judge, spec, resolve_for_model("auto", judge)), (None if judge is model else judge)
    raise ValueError(f"bad scorer {spec!r} (--scorer): use pm:<preference model folder> or judge:<model spec>")


def score_revisions(run: Run, model: Any, spec: str, finals: list[tuple[str, str, str, str]], *,
                    chunk_size: int = 16) -> None:
    """Score (original, final revision) of every (prompt id, question, original, final) not scored yet."""
    done = run.done_keys()
    todo = [f for f in finals if f"{f[0]}|score" not in done]
    if not todo:
        return
    scorer, owned = load_scorer(spec, model)
    try:
        for start in range(0, len(todo), chunk_size):
            chunk = todo[start:start + chunk_size]
            scores = scorer.score([[Message("user", q), Message("assistant", text)]
                                   for _, q, original, final in chunk for text in (original, final)])
            run.append([{"section": SCORE_SECTION, "model": spec, "key": f"{pid}|score", "prompt_id": pid,
                         "scorer": spec, "original": scores[2 * i], "revision": scores[2 * i + 1]}
                        for i, (pid, _, _, _) in enumerate(chunk)])
    finally:
        if owned is not None:
            owned.close()


def paired_comparison(first: list[float], second: list[float], *, seed: int) -> dict[str, Any]:
    """Means of both, mean paired difference (second − first) with a paired bootstrap 95% CI, and n."""
    a, b = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    ci = paired_bootstrap_ci(a, b, seed=seed) if len(a) > 1 else (float("nan"), float("nan"))
    return {"n": len(a), "first": float(a.mean()), "second": float(b.mean()), "difference": float((b - a).mean()),
            "ci": ci}


def harmlessness_table(samples: Iterable[dict[str, Any]], *, seed: int, model: str) -> dict[str, Any] | None:
    """Headline entries, a table and results of the revise scores in ``samples``; None when nothing was scored."""
    rows = [s for s in samples if s.get("section") == SCORE_SECTION]
    if not rows:
        return None
    spec = rows[0]["scorer"]
    m = paired_comparison([r["original"] for r in rows], [r["revision"] for r in rows], seed=seed)
    task = "revise/harmlessness"
    return {"scorer": spec,
            "headline": [{"label": f"harmlessness original → revision ({spec})",
                          "value": f"{m['first']:.4f} → {m['second']:.4f}"},
                         {"label": "revision − original", "value": round(m["difference"], 4),
                          "ci": list(m["ci"]), "note": f"paired, n={m['n']}"}],
            "table": {"title": f"Harmlessness of originals vs final revisions (scorer {spec}, higher = safer)",
                      "columns": ["n", "original", "revision", "difference", "95% CI low", "95% CI high"],
                      "rows": [[m["n"], round(m["first"], 4), round(m["second"], 4), round(m["difference"], 4),
                                round(m["ci"][0], 4), round(m["ci"][1], 4)]]},
            "results": [result(task, "original_mean", m["first"], model=model, n=m["n"], scorer=spec),
                        result(task, "revision_mean", m["second"], model=model, n=m["n"], scorer=spec),
                        result(task, "difference", m["difference"], model=model, n=m["n"], ci=m["ci"],
                               scorer=spec)]}


def label_bias(records: list[dict[str, Any]]) -> dict[str, float]:
    """Position bias and spread of AI-feedback labels: ``mean_p_a`` (the labels), ``std_p_a``, ``share_near_half``
    (|P(A) − 0.5| ≤ 0.05), ``mean_p_a_first`` (P(A) with A shown first); with swap also ``mean_p_a_second`` (P(A)
    with A shown second, 1 − p_BA), ``order_gap`` (first − second: 0 without position bias) and ``mean_p_first``
    (P(first option) over both orders: 0.5 without position bias)."""
    p = np.array([r["p_a"] for r in records], dtype=float)
    members = [m for r in records for m in r["members"]]
    first = np.array([m["p_ab"] for m in members], dtype=float)
    out = {"n": float(len(p)), "mean_p_a": float(p.mean()), "std_p_a": float(p.std()),
           "share_near_half": float(np.mean(np.abs(p - 0.5) <= NEAR_HALF)), "mean_p_a_first": float(first.mean())}
    swapped = [m for m in members if m.get("p_ba") is not None]
    if swapped:
        ab = np.array([m["p_ab"] for m in swapped], dtype=float)
        second = 1.0 - np.array([m["p_ba"] for m in swapped], dtype=float)
        out.update(mean_p_a_second=float(second.mean()), order_gap=float(ab.mean() - second.mean()),
                   mean_p_first=float(np.mean(np.concatenate([ab, 1.0 - second]))))
    return out


def weight_distance(start: dict[str, Any], end: dict[str, Any]) -> float:
    """‖θ_end − θ_start‖ / ‖θ_start‖ over the tensors both state dicts share (by name)."""
    import torch

    diff, norm = 0.0, 0.0
    for name, before in start.items():
        after = end.get(name)
        if after is None or after.shape != before.shape:
            continue
        before64, after64 = before.detach().double().cpu(), after.detach().double().cpu()
        diff += float(torch.sum((after64 - before64) ** 2))
        norm += float(torch.sum(before64 ** 2))
    return (diff ** 0.5) / (norm ** 0.5) if norm else float("nan")
