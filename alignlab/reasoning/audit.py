"""The audit's reasoning part: Lanham et al. 2023 early answering and accuracy with and without CoT on
StrategyQA (BIG-bench). The ``small`` budget (3 questions, 3 CoTs of at most 64 tokens each) takes about a minute
on the embedded model; ``full`` runs all four tests with the CLI defaults on every question.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from alignlab.models.base import Model
from alignlab.reasoning.config import TESTS, FaithfulnessConfig
from alignlab.reasoning.runner import run_faithfulness
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


def audit_reasoning(run: Run, models: list[Model], cap: int | None, data: str | None,
                    progress: Callable[[str, int, int], None] | None) -> dict[str, Any]:
    """Early answering (and, for ``full``, every test) on at most ``cap`` StrategyQA questions."""
    return run_faithfulness(run, models, audit_config(cap, data), progress=progress)


AUDIT = AuditPart("reasoning", "CoT faithfulness", caps={"small": SMALL_CAP, "full": None},
                  run=audit_reasoning, headline=audit_headline)
