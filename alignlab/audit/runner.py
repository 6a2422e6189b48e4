"""The audit's runner: each study's part under a budget, on one model or two, combined into one summary."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any

from alignlab.audit.config import STUDY_MODULES, AuditConfig
from alignlab.models.base import Model
from alignlab.runs.results import results_of, side_by_side
from alignlab.runs.run import Run
from alignlab.runs.study import AuditPart, finish, load_item, marking_failure

Progress = Callable[[str, int, int], None]
AuditStudy = AuditPart  # the name earlier versions exported


def available_studies() -> dict[str, AuditPart]:
    """Every study's audit part, by name, in the audit's order."""
    parts = [importlib.import_module(module).AUDIT for module in STUDY_MODULES]
    return {part.name: part for part in parts}


def run_audit(run: Run, models: list[Model], budget: str = "small", data: str | None = None,
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


def run(config: AuditConfig | None = None, model: Any = "embedded", *, compare: Any = None,
        out: str | os.PathLike[str] = "runs", resume: str | os.PathLike[str] | None = None, dtype: str = "float32",
        cache: bool = True, progress: Progress | None = None, report: bool = True,
        load: Callable[[str, str, bool], Model] | None = None, command: str | None = None,
        on_open: Callable[[Run], None] | None = None) -> tuple[Run, dict[str, Any]]:
    """Audit ``model`` (and ``compare``, side by side) with every study of ``config`` into one run directory, or
    finish ``resume``; returns ``(run, summary)``. Models are spec strings or loaded models."""
    if resume is not None:
        run_dir = Run.resume(resume, study="audit")
        saved = run_dir.manifest["config"]
        config = AuditConfig.from_dict(saved)
        items, dtype = list(saved["models"]), saved.get("dtype", dtype)
    else:
        config = config or AuditConfig()
        items = [model] + ([compare] if compare is not None else [])
        specs = [m if isinstance(m, str) else m.spec for m in items]
        run_dir = Run.create("audit", {"models": specs, **config.as_dict(), "dtype": dtype}, root=out,
                             command=command)
    if on_open is not None:
        on_open(run_dir)
    loaded: list[Model] = []
    try:
        with marking_failure(run_dir):
            for item in items:
                loaded.append(load_item(item, dtype, cache, load))
            summary = run_audit(run_dir, loaded, config.budget, config.data, config.studies or None, progress)
    finally:
        for m, item in zip(loaded, items, strict=False):
            if m is not item:
                m.close()
    finish(run_dir, summary, report=report)
    return run_dir, summary


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
    results = [{"study": name, **entry} for name, summary in summaries.items() for entry in results_of(summary)]
    if len(specs) == 2:
        overview["tables"].append({"title": "Every result side by side (from results.json)",
                                   "columns": ["study", "task", "metric", "condition", *specs, "difference",
                                               f"n {specs[0]}", f"n {specs[1]}"],
                                   "rows": side_by_side(results, *specs)})
    sections = [overview] + [s for name in summaries for s in summaries[name].get("sections", [])]
    notes = [f"{name}: {n}" for name, summary in summaries.items() for n in summary.get("notes", [])]
    return {"title": "alignlab audit", "headline": cards, "sections": sections, "notes": notes, "results": results,
            "studies": {name: {k: v for k, v in s.items() if k not in ("sections", "headline")}
                        for name, s in summaries.items()}}


def _prefixed(progress: Progress, name: str) -> Progress:
    return lambda label, done, total: progress(f"{name}: {label}", done, total)


def _text(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
