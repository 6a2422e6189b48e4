"""The audit's honesty part: MC calibration of two BIG-bench tasks and a small P(True) on generated arithmetic.

Nothing is trained here (P(IK) needs training; run ``alignlab honesty pik`` for it). ``small`` is sized so the
embedded model's part takes about a minute on 2 CPU cores.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np

from alignlab.honesty.calibration import CalibrationConfig, run_calibration
from alignlab.honesty.ptrue import PTrueConfig, run_ptrue
from alignlab.metrics.honesty import auroc
from alignlab.models.base import Model
from alignlab.runs.results import ItemValues
from alignlab.runs.run import Run
from alignlab.runs.study import AuditPart

AUDIT_TASKS = ["date_understanding", "logical_deduction"]
AUDIT_ARITHMETIC = "arithmetic:add+sub:2"
LOOP_RESAMPLES = 1000  # AUROC is recomputed in Python (scikit-learn) per resample


def audit_headline(summary: dict[str, Any]) -> list[tuple[str, dict[str, float]]]:
    """ECE (T=1) per calibration task and P(True) AUROC (zero-shot) per model."""
    per_task: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for key, by_t in summary.get("calibration", {}).items():
        model, task, _ = key.split("|")
        ece = by_t.get("T=1", {}).get("ece")
        if ece is not None:  # a parent task is the mean of its subtasks
            per_task[task.split("/")[0]][model].append(ece)
    rows = [(f"{task} ECE (10 equal-count bins)", {m: round(sum(v) / len(v), 4) for m, v in models.items()})
            for task, models in per_task.items()]
    ptrue = {key.split("|")[0]: m["auroc"] for key, m in summary.get("ptrue", {}).items()
             if key.endswith("|zero_shot") and m.get("auroc") is not None}
    if ptrue:
        rows.append((f"P(True) AUROC, {AUDIT_ARITHMETIC}", {m: round(v, 4) for m, v in ptrue.items()}))
    return rows


def auroc_rows(rows: np.ndarray) -> np.ndarray:
    """Per resample, the AUROC of P(True) for sample correctness over every sample of the drawn questions; rows
    are ``(p_1..p_k, correct_1..correct_k)`` per question (0.5 when a resample holds only one class)."""
    half = rows.shape[-1] // 2
    out = np.empty(rows.shape[0])
    for i, resample in enumerate(rows):
        value = auroc(resample[:, :half].ravel(), resample[:, half:].ravel())
        out[i] = 0.5 if value is None else value
    return out


def audit_items(samples: list[dict[str, Any]], summary: dict[str, Any]) -> list[ItemValues]:
    """P(True) AUROC (zero-shot): per arithmetic question, its samples' P(True) and correctness. The ECE rows
    have none: a bootstrap resample repeats questions, which shrinks the equal-count bins and inflates the ECE (in
    our runs the percentile interval of a model's ECE, and of a paired ECE difference, missed the estimate), so
    they are compared without a CI."""
    values: dict[str, dict[str, tuple[float, ...]]] = defaultdict(dict)
    for s in samples:
        scores = s.get("p_true", {}).get("zero_shot") if s.get("section") == "honesty_ptrue" else None
        if scores is not None and s.get("task") == AUDIT_ARITHMETIC and len(scores) == len(s["sample_correct"]):
            values[s["model"]][s["id"]] = (*map(float, scores), *map(float, s["sample_correct"]))
    if len({len(row) for rows in values.values() for row in rows.values()}) != 1:
        return []  # questions with different sample counts: no fixed-width rows
    return [ItemValues(f"P(True) AUROC, {AUDIT_ARITHMETIC}", dict(values), statistic=auroc_rows,
                       resamples=LOOP_RESAMPLES)]


def audit_honesty(run: Run, models: list[Model], cap: int | None, data: str | None,
                  progress: Callable[[str, int, int], None] | None) -> dict[str, Any]:
    """Calibration of ``AUDIT_TASKS`` (``cap`` questions each) and P(True) on ``cap // 2`` arithmetic questions."""
    calibration = run_calibration(run, models, CalibrationConfig(tasks=list(AUDIT_TASKS), max_items=cap, data=data),
                                  progress)
    ptrue = run_ptrue(run, models, PTrueConfig(task=AUDIT_ARITHMETIC, questions=max(4, (cap or 200) // 2),
                                               variants=["zero_shot"], data=data), progress)
    return {"title": "Honesty", "headline": calibration["headline"] + ptrue["headline"],
            "sections": calibration["sections"] + ptrue["sections"],
            "notes": calibration["notes"] + ptrue["notes"],
            "calibration": calibration["metrics"], "ptrue": ptrue["metrics"]}


AUDIT = AuditPart("honesty", "Honesty (Kadavath et al. 2022)", caps={"small": 24, "full": None},
                  run=audit_honesty, headline=audit_headline)
