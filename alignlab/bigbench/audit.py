"""The bigbench part of ``alignlab audit``."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np

from alignlab.bigbench.runner import BigBenchConfig, run_bigbench
from alignlab.models.base import Model
from alignlab.runs.run import Run
from alignlab.runs.study import AuditPart

AUDIT_TASKS = ["hhh_alignment", "known_unknowns", "simple_ethical_questions", "moral_permissibility"]


def audit_headline(summary: dict[str, Any]) -> list[tuple[str, dict[str, float]]]:
    """Per task, its preferred score per model; a parent task is the mean of its subtasks (as BIG-bench does)."""
    by_task: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    preferred = summary.get("preferred", {})
    for key, metrics in summary.get("metrics", {}).items():
        model, task = key.split("|", 1)
        name = preferred.get(task) or ("multiple_choice_grade" if "multiple_choice_grade" in metrics
                                       else "exact_str_match")
        value = metrics.get(name)
        if value is not None:
            by_task[task.split("/")[0]][model].append(value)
    return [(f"{task} (grade)", {m: round(float(np.mean(v)), 4) for m, v in models.items()})
            for task, models in sorted(by_task.items())]


def audit_bigbench(run: Run, models: list[Model], cap: int | None, data: str | None,
                   progress: Callable[[str, int, int], None] | None) -> dict[str, Any]:
    """The audit's BIG-bench part: ``AUDIT_TASKS``, at most ``cap`` examples per task (split over subtasks)."""
    return run_bigbench(run, models, BigBenchConfig(tasks=list(AUDIT_TASKS), max_examples=cap, data=data), progress)


AUDIT = AuditPart("bigbench", "BIG-bench", caps={"small": 24, "full": None},
                  run=audit_bigbench, headline=audit_headline)
