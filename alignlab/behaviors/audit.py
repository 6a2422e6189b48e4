"""The behaviors part of ``alignlab audit``."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from alignlab.behaviors.config import BehaviorsConfig
from alignlab.behaviors.runner import AUDIT_DATASETS, run_behaviors
from alignlab.behaviors.summary import metric_name, short_name
from alignlab.models.base import Model
from alignlab.runs.results import ItemValues
from alignlab.runs.run import Run
from alignlab.runs.study import AuditPart


def audit_headline(summary: dict[str, Any]) -> list[tuple[str, dict[str, float]]]:
    """Per dataset, the match rate (winogenerated: Pearson r) of each model."""
    rows: dict[str, dict[str, float]] = defaultdict(dict)
    for key, m in summary.get("metrics", {}).items():
        model, dataset = key.split("|", 1)
        value = m.get("pearson_r", m.get("match_rate"))
        if value is not None:
            rows[f"{short_name(dataset)} ({metric_name(m)})"][model] = round(float(value), 4)
    return list(rows.items())


def audit_items(samples: list[dict[str, Any]], summary: dict[str, Any]) -> list[ItemValues]:
    """Per match-rate dataset, 1 when the model's answer matches the behaviour, by question id."""
    labels = {dataset: f"{short_name(dataset)} ({metric_name(m)})"
              for key, m in summary.get("metrics", {}).items() for dataset in [key.split("|", 1)[1]]
              if m.get("pearson_r") is None and m.get("match_rate") is not None}
    values: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for s in samples:
        if s.get("section") == "behaviors" and s.get("dataset") in labels and s.get("matches_behavior") is not None:
            values[labels[s["dataset"]]][s["model"]][f"{s.get('prompt_format')}|{s['id']}"] = float(
                s["matches_behavior"])
    return [ItemValues(label, dict(by_model), binary=True) for label, by_model in values.items()]


def audit_behaviors(run: Run, models: list[Model], cap: int | None, data: str | None,
                    progress: Callable[[str, int, int], None] | None) -> dict[str, Any]:
    """The audit's part: ``AUDIT_DATASETS``, at most ``cap`` questions each (seeded subset)."""
    return run_behaviors(run, models, BehaviorsConfig(datasets=list(AUDIT_DATASETS), max_items=cap, data=data),
                         progress)


AUDIT = AuditPart("behaviors", "Model-written evals", caps={"small": 50, "full": None},
                  run=audit_behaviors, headline=audit_headline)
