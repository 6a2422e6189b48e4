"""``alignlab audit``: every available study on one model (or two, side by side), one report.

Each study declares its part (``AUDIT`` in ``<study>/audit.py``) with a cap on the items each dataset contributes
under each budget (``small`` is sized so that auditing the embedded model takes minutes on 2 CPU cores; ``full``
uses everything).
Nothing is trained inside the audit: a trained model is audited by naming it with ``--compare``.

Every study writes its samples into the one run directory (each sample's ``section`` says which study), so
``--resume`` finishes an interrupted audit without recomputing a finished sample.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Literal

from alignlab.models.base import Model
from alignlab.runs.run import Run
from alignlab.runs.study import AuditPart

Budget = Literal["small", "full"]
Progress = Callable[[str, int, int], None]
AuditStudy = AuditPart  # the name earlier versions exported

# Each study's ``audit.py`` declares its part as ``AUDIT``; a study added later adds its module here.
STUDY_MODULES = ("alignlab.bigbench.audit", "alignlab.behaviors.audit", "alignlab.honesty.audit",
                 "alignlab.fairness.audit", "alignlab.reasoning.audit", "alignlab.redteam.audit")


def available_studies() -> dict[str, AuditPart]:
    """Every study's audit part, by name, in the audit's order."""
    parts = [importlib.import_module(module).AUDIT for module in STUDY_MODULES]
    return {part.name: part for part in parts}


def run_audit(run: Run, models: list[Model], budget: Budget = "small", data: str | None = None,
              studies: list[str] | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Run every registered study (or those named) on every model; returns the combined summary."""
    registry = available_studies()
    unknown = sorted(set(studies or []) - set(registry))
    if unknown:
        raise ValueError(f"unknown audit studies {unknown}: choose from {sorted(registry)}")
    chosen = [registry[name] for name in (studies or list(registry))]
    summaries = {}
    for study in chosen:
        if budget not in study.caps:
            raise ValueError(f"study {study.name} has no cap for budget {budget!r}")
        labelled = None if progress is None else _prefixed(progress, study.name)
        summaries[study.name] = study.run(run, models, study.caps[budget], data, labelled)
    return combine(summaries, chosen, [m.spec for m in models], budget)


def combine(summaries: dict[str, dict[str, Any]], studies: list[AuditPart], specs: list[str],
            budget: str) -> dict[str, Any]:
    """One summary: a headline table (one column per model, plus their difference) then each study's sections."""
    rows, cards = [], []
    for study in studies:
        for label, values in study.headline(summaries[study.name]):
            cells = [values.get(spec) for spec in specs]
            if len(specs) == 2:
                both = None not in cells
                cells.append(round(cells[1] - cells[0], 4) if both else None)
            rows.append([study.title, label, *cells])
            note = specs[0] if len(specs) == 1 else " vs ".join(
                f"{spec}: {_text(values.get(spec))}" for spec in specs)
            cards.append({"label": f"{study.title}: {label}", "value": values.get(specs[0]), "note": note})
    columns = ["study", "metric", *specs, *(["difference"] if len(specs) == 2 else [])]
    overview = {
        "id": "audit",
        "title": "Audit summary",
        "description": (f"Budget '{budget}': every study available in this alignlab version, on "
                        f"{' and '.join(specs)}. Each section below reproduces one paper's protocol and says which."),
        "tables": [{"title": "Headline numbers", "columns": columns, "rows": rows}],
    }
    sections = [overview] + [s for name in summaries for s in summaries[name].get("sections", [])]
    notes = [f"{name}: {n}" for name, summary in summaries.items() for n in summary.get("notes", [])]
    return {"title": "alignlab audit", "headline": cards, "sections": sections, "notes": notes,
            "studies": {name: {k: v for k, v in s.items() if k not in ("sections", "headline")}
                        for name, s in summaries.items()}}


def _prefixed(progress: Progress, name: str) -> Progress:
    return lambda label, done, total: progress(f"{name}: {label}", done, total)


def _text(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
