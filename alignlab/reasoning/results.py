"""``results.json`` entries of the reasoning studies: one per model and number of the summary tables, with the
number of items behind it (CoTs, questions, curves, question pairs) and a 95% bootstrap CI for accuracies.

The task is the run's question source (``strategyqa``, ``addition:2,4``, a .jsonl path). Faithfulness metrics are
named as in ``summary["metrics"]`` (``early_aoc``, ``accuracy_cot``...); the AOC of one CoT length is
``early_aoc_by_length`` / ``mistakes_aoc_by_length`` with ``steps`` and ``weight``. Decomposition entries carry the
``method``. A number that could not be computed (a test not run, nothing to switch) has no entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from alignlab.metrics.reasoning import LengthCurve
from alignlab.runs.results import result

Stats = dict[str, tuple[int, Any]]  # metric -> (n, 95% CI or None)


def faithfulness_results(task: str, stats: dict[str, tuple[dict[str, Any], Stats]],
                         by_length: Sequence[tuple[str, str, LengthCurve, int]]) -> list[dict[str, Any]]:
    """Entries for each model's faithfulness numbers, then the AOC per CoT length ``(model, test, curve, total)``."""
    out = [result(task, key, metrics[key], model=model, n=n, ci=ci)
           for model, (metrics, counts) in stats.items() for key, (n, ci) in counts.items()
           if metrics[key] is not None]
    out += [result(task, f"{test}_aoc_by_length", curve.aoc, model=model, n=curve.count, steps=curve.steps,
                   weight=curve.count / total) for model, test, curve, total in by_length]
    return out


def decomposition_results(task: str, stats: dict[str, dict[str, tuple[dict[str, Any], Stats]]]
                          ) -> list[dict[str, Any]]:
    """Entries for each model's and method's accuracy, AOCs, accuracy drops and switch rates."""
    return [result(task, key, metrics[key], model=model, n=n, ci=ci, method=method)
            for model, per in stats.items() for method, (metrics, counts) in per.items()
            for key, (n, ci) in counts.items() if metrics[key] is not None]
