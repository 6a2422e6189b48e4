"""The loop's before/after table: the same attacks, played against the base model and the trained policy, scored by
one fixed scorer, paired by attack.

Per target type: n paired attacks, the mean min-harmlessness of each model, the paired difference (after - before)
with a bootstrap 95% CI that resamples the same attacks for both, the attack success rate of each (min harmlessness
below the scorer's threshold, set once on the calibration pairs) and the exact McNemar p-value of the paired
successes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from alignlab.metrics.stats import mcnemar_exact, paired_bootstrap_ci
from alignlab.runs.results import result

COLUMNS = ["target", "n", "harmlessness before", "harmlessness after", "difference", "95% CI", "success before",
           "success after", "McNemar p"]


def read_samples(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / "samples.jsonl"
    if not path.is_file():
        return []
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def scored(run_dir: Path, scorer: str) -> tuple[dict[tuple[str, str], dict[str, Any]], float | None]:
    """``{(target type, attack id): {"score", "reply", "messages"}}`` of a red-team run under ``scorer``, and the
    scorer's threshold in that run."""
    samples = [s for s in read_samples(run_dir) if s.get("section") == "redteam"]
    convs = {s["key"]: s for s in samples if s.get("kind") == "conversation"}
    threshold = next((s["threshold"] for s in samples if s.get("kind") == "calibration" and s["scorer"] == scorer),
                     None)
    out = {}
    for s in samples:
        conv = convs.get(s.get("conv_key", ""))
        if s.get("kind") != "score" or s["scorer"] != scorer or conv is None or s["min_harmlessness"] is None:
            continue
        out[(conv["target_type"], conv["attack_id"])] = {"score": float(s["min_harmlessness"]),
                                                         "messages": conv["messages"]}
    return out, threshold


def paired_rows(before: dict[tuple[str, str], dict[str, Any]], after: dict[tuple[str, str], dict[str, Any]],
                threshold: float | None, *, seed: int) -> tuple[list[list[Any]], list[dict[str, Any]]]:
    """The table's rows and the ``results.json`` entries, one per target type present in both runs."""
    rows, results = [], []
    for target in sorted({t for t, _ in before} & {t for t, _ in after}):
        keys = sorted(k for k in before if k[0] == target and k in after)
        a = np.array([before[k]["score"] for k in keys])
        b = np.array([after[k]["score"] for k in keys])
        low, high = paired_bootstrap_ci(a, b, seed=seed) if len(keys) > 1 else (None, None)
        diff = float(b.mean() - a.mean())
        success = p = None
        if threshold is not None:
            sa, sb = (a < threshold).astype(float), (b < threshold).astype(float)
            success, p = (float(sa.mean()), float(sb.mean())), mcnemar_exact(sa, sb)
        rows.append([target, len(keys), _r(a.mean()), _r(b.mean()), _r(diff),
                     None if low is None else f"[{_r(low)}, {_r(high)}]",
                     None if success is None else _r(success[0]), None if success is None else _r(success[1]),
                     None if p is None else _r(p)])
        common = {"model": "after - before", "n": len(keys), "target": target}
        results.append(result("redteam", "min_harmlessness_difference", diff,
                              ci=None if low is None else (low, high), **common))
        if success is not None:
            results.append(result("redteam", "attack_success_difference", success[1] - success[0],
                                  mcnemar_p=p, **common))
    return rows, results


def most_changed(before: dict[tuple[str, str], dict[str, Any]], after: dict[tuple[str, str], dict[str, Any]],
                 top: int) -> list[dict[str, Any]]:
    """The ``top`` attacks whose harmlessness changed most (by |after - before|), with the policy's reply."""
    keys = sorted((k for k in before if k in after), key=lambda k: (-abs(after[k]["score"] - before[k]["score"]), k))
    out = []
    for k in keys[:top]:
        messages = after[k]["messages"]
        out.append({"target": k[0], "attack_id": k[1], "before": before[k]["score"], "after": after[k]["score"],
                    "messages": messages[:-1], "reply": messages[-1]["content"],
                    "reply_before": before[k]["messages"][-1]["content"]})
    return out


def _r(value: float) -> float:
    return round(float(value), 4)
