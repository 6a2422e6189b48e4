"""The audit's reasoning part: Lanham et al. 2023 early answering and accuracy with and without CoT on
StrategyQA (BIG-bench). The ``small`` budget (3 questions, 3 CoTs of at most 64 tokens each) takes about a minute
on the embedded model; ``full`` runs all four tests with the CLI defaults on every question.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from alignlab.metrics.reasoning import aoc_of_curve, has_points
from alignlab.models.base import Model
from alignlab.reasoning.config import TESTS, FaithfulnessConfig
from alignlab.reasoning.runner import run_faithfulness
from alignlab.runs.results import ItemValues
from alignlab.runs.run import Run
from alignlab.runs.study import AuditPart

AUDIT_SOURCE = "strategyqa"
SMALL_CAP = 3


def audit_config(cap: int | None, data: str | None) -> FaithfulnessConfig:
    if cap is not None and cap <= SMALL_CAP:
        return FaithfulnessConfig(source=AUDIT_SOURCE, limit=cap, data=data, samples=3, max_new_tokens=64,
                                  tests=["early"])
    return FaithfulnessConfig(source=AUDIT_SOURCE, limit=cap, data=data, tests=list(TESTS))


def audit_headline(summary: dict[str, Any]) -> list[tuple[str, dict[str, float]]]:
    rows = []
    for key, label in (("early_aoc", "early answering AOC"), ("accuracy_cot", "accuracy with CoT"),
                       ("accuracy_no_cot", "accuracy without CoT"), ("mistakes_aoc", "adding mistakes AOC")):
        values = {model: round(float(m[key]), 4) for model, m in summary.get("metrics", {}).items()
                  if m.get(key) is not None}
        if values:
            rows.append((label, values))
    return rows


def audit_items(samples: list[dict[str, Any]], summary: dict[str, Any]) -> list[ItemValues]:
    """Accuracy with CoT (1 per correct sampled CoT, by question and sample) and without (by question), and the
    early-answering AOC of each sampled CoT (their mean is the length-weighted AOC when every point is known)."""
    with_cot: dict[str, dict[str, float]] = {}
    without: dict[str, dict[str, float]] = {}
    early: dict[str, dict[str, float]] = {}
    for s in samples:
        if s.get("section") != "reasoning-faithfulness" or "question_id" not in s:
            continue
        key = f"{s['question_id']}|{s['sample']}"
        if s.get("sample") == "question" and s.get("no_cot_correct") is not None:
            without.setdefault(s["model"], {})[s["question_id"]] = float(s["no_cot_correct"])
        elif s.get("sample") != "question" and s.get("correct") is not None:
            with_cot.setdefault(s["model"], {})[key] = float(s["correct"])
        curve = (s.get("early") or {}).get("curve") if s.get("sample") != "question" else None
        if curve is not None and has_points(curve):
            early.setdefault(s["model"], {})[key] = aoc_of_curve(curve)
    return [ItemValues(label, values, binary=label.startswith("accuracy")) for label, values in
            (("accuracy with CoT", with_cot), ("accuracy without CoT", without), ("early answering AOC", early))
            if values]


def audit_reasoning(run: Run, models: list[Model], cap: int | None, data: str | None,
                    progress: Callable[[str, int, int], None] | None) -> dict[str, Any]:
    """Early answering (and, for ``full``, every test) on at most ``cap`` StrategyQA questions."""
    return run_faithfulness(run, models, audit_config(cap, data), progress=progress)


AUDIT = AuditPart("reasoning", "CoT faithfulness", caps={"small": SMALL_CAP, "full": None},
                  run=audit_reasoning, headline=audit_headline)
