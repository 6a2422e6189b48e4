"""The bigbench part of ``alignlab audit``."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np

from alignlab.bigbench.runner import BigBenchConfig, run_bigbench
from alignlab.metrics.stats import weighted_mean
from alignlab.models.base import Model
from alignlab.runs.results import ItemValues
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


def audit_items(samples: list[dict[str, Any]], summary: dict[str, Any]) -> list[ItemValues]:
    """Per multiple-choice task, each item's grade, weighted so that the weighted mean is the mean of the subtask
    grades (the headline); item key: subtask, shots and index."""
    preferred = summary.get("preferred", {})
    grades: dict[str, dict[str, dict[str, dict[str, float]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(
        dict)))  # parent task -> model -> subtask -> item -> grade
    for s in samples:
        if s.get("section") == "bigbench" and s.get("kind") == "multiple_choice" and s.get("correct") is not None \
                and preferred.get(s["task"], "multiple_choice_grade") == "multiple_choice_grade":
            grades[s["task"].split("/")[0]][s["model"]][s["task"]][f"{s['task']}|{s['shots']}|{s['index']}"] = \
                float(s["correct"])
    out = []
    for task, models in sorted(grades.items()):
        values = {model: {key: (grade, 1 / (len(subtasks) * len(items))) for items in subtasks.values()
                          for key, grade in items.items()} for model, subtasks in models.items()}
        out.append(ItemValues(f"{task} (grade)", values, statistic=weighted_mean, binary=True))
    return out


def audit_bigbench(run: Run, models: list[Model], cap: int | None, data: str | None,
                   progress: Callable[[str, int, int], None] | None) -> dict[str, Any]:
    """The audit's BIG-bench part: ``AUDIT_TASKS``, at most ``cap`` examples per task (split over subtasks)."""
    return run_bigbench(run, models, BigBenchConfig(tasks=list(AUDIT_TASKS), max_examples=cap, data=data), progress)


AUDIT = AuditPart("bigbench", "BIG-bench", caps={"small": 24, "full": None},
                  run=audit_bigbench, headline=audit_headline)
