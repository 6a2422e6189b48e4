"""The audit's runner: each study's part under a budget, on one model or two, combined into one summary."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any

from alignlab.audit.config import STUDY_MODULES, STUDY_NAMES, AuditConfig
from alignlab.audit.paired import (
    TOLERANCE,
    describe_pair,
    model_ci,
    paired,
    paired_columns,
    paired_result,
    paired_row,
    reproduces,
)
from alignlab.models.base import Model
from alignlab.models.distributed import led
from alignlab.runs.results import ItemValues, results_of, side_by_side
from alignlab.runs.run import Run
from alignlab.runs.study import AuditPart, finish, load_item, marking_failure

Progress = Callable[[str, int, int], None]
ItemsHook = Callable[[list[dict[str, Any]], dict[str, Any]], list[ItemValues]]
AuditStudy = AuditPart  # the name earlier versions exported


def available_studies() -> dict[str, AuditPart]:
    """Every study's audit part, by name, in the audit's order."""
    parts = [importlib.import_module(module).AUDIT for module in STUDY_MODULES]
    return {part.name: part for part in parts}


def item_hooks() -> dict[str, ItemsHook]:
    """Each study's ``audit_items(samples, summary)`` (the per-item values behind its headline), by study name."""
    modules = [importlib.import_module(module) for module in STUDY_MODULES]
    return {m.AUDIT.name: m.audit_items for m in modules if hasattr(m, "audit_items")}


def run_audit(run: Run, models: list[Model], budget: str = "small", data: str | None = None,
              studies: list[str] | None = None, progress: Progress | None = None,
              options: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Run every registered study (or those named) on every model; returns the combined summary. ``options``
    holds extra keyword arguments for a study's part, by study name (e.g. the red-team scorer)."""
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
        summaries[study.name] = study.run(run, models, study.caps[budget], data, labelled,
                                          **(options or {}).get(study.name, {}))
    samples, hooks = run.samples(), item_hooks()
    items = {name: hooks[name](samples, summary) for name, summary in summaries.items() if name in hooks}
    return combine(summaries, chosen, [m.spec for m in models], budget, items, seed=run.manifest.get("seed", 0))


@led(lambda: (None, {}))
def run(config: AuditConfig | None = None, model: Any = "embedded", *, compare: Any = None,
        out: str | os.PathLike[str] = "runs", resume: str | os.PathLike[str] | None = None, dtype: str = "float32",
        cache: bool = True, progress: Progress | None = None, report: bool = True,
        load: Callable[[str, str, bool], Model] | None = None, command: str | None = None,
        on_open: Callable[[Run], None] | None = None) -> tuple[Run, dict[str, Any]]:
    """Audit ``model`` (and ``compare``, side by side) with every study of ``config`` into one run directory, or
    finish ``resume``; returns ``(run, summary)``. Models are spec strings or loaded models. Under ``torchrun``
    rank 0 audits while the other ranks lend it their replicas of each model (every study's model calls are
    shared); they return ``(None, {})``."""
    if resume is not None:
        run_dir = Run.resume(resume, study="audit")
        saved = run_dir.manifest["config"]
        config = AuditConfig.from_dict(saved)
        items, dtype = list(saved["models"]), saved.get("dtype", dtype)
    else:
        config = config or AuditConfig()
        items = [model] + ([compare] if compare is not None else [])
        specs = [m if isinstance(m, str) else m.spec for m in items]
        if "redteam" in (config.studies or STUDY_NAMES):
            from alignlab.redteam.audit import choose_scorer

            choose_scorer(specs, config.redteam_scorer)  # an audited model named as the judge: refused up front
        run_dir = Run.create("audit", {"models": specs, **config.as_dict(), "dtype": dtype}, root=out,
                             command=command)
    if on_open is not None:
        on_open(run_dir)
    loaded: list[Model] = []
    try:
        with marking_failure(run_dir):
            for item in items:
                loaded.append(load_item(item, dtype, cache, load))
            options = {"redteam": {"scorer": config.redteam_scorer,
                                   "load": lambda spec: load_item(spec, dtype, cache, load)}}
            summary = run_audit(run_dir, loaded, config.budget, config.data, config.studies or None, progress,
                                options)
    finally:
        for m, item in zip(loaded, items, strict=False):
            if m is not item:
                m.close()
    finish(run_dir, summary, report=report)
    return run_dir, summary


def combine(summaries: dict[str, dict[str, Any]], studies: list[AuditPart], specs: list[str], budget: str,
            items: dict[str, list[ItemValues]] | None = None, seed: int = 0) -> dict[str, Any]:
    """One summary: a headline table (one column per model, plus their difference), for two models a paired table
    (same items, bootstrap CI, McNemar p), then each study's sections. ``items`` are the studies' per-item values
    (``audit_items``): they give each headline card its 95% CI and each paired row its statistics."""
    by_label = {(name, iv.label): iv for name, ivs in (items or {}).items() for iv in ivs}
    rows, cards, pairs, paired_results, notes = [], [], [], [], []
    for study in studies:
        for label, values in study.headline(summaries[study.name]):
            cells = [values.get(spec) for spec in specs]
            if len(specs) == 2:
                both = None not in cells
                cells.append(round(cells[1] - cells[0], 4) if both else None)
            rows.append([study.title, label, *cells])
            per_item = _checked(by_label.get((study.name, label)), values, specs, notes, f"{study.name}: {label}")
            note = specs[0] if len(specs) == 1 else " vs ".join(
                f"{spec}: {_text(values.get(spec))}" for spec in specs)
            pair = paired(per_item, *specs, seed=seed) if per_item and len(specs) == 2 else None
            if pair:
                pairs.append(paired_row(study.title, label, pair))
                paired_results.append(paired_result(study.name, label, pair, *specs))
                note += f"; {describe_pair(pair)}"
            ci = _card_ci(summaries[study.name], label, values.get(specs[0]), per_item, specs[0], seed)
            cards.append({"label": f"{study.title}: {label}", "value": values.get(specs[0]), "note": note,
                          **({"ci": [round(ci[0], 4), round(ci[1], 4)]} if ci else {})})
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
        overview["description"] += PAIRED_NOTE
        overview["tables"].append({"title": "Every result side by side (from results.json)",
                                   "columns": ["study", "task", "metric", "condition", *specs, "difference",
                                               f"n {specs[0]}", f"n {specs[1]}"],
                                   "rows": side_by_side(results, *specs)})
        overview["tables"].append({"title": "Paired comparison (the same items for both models)",
                                   "columns": paired_columns(*specs), "rows": pairs})
        unpaired = [f"{row[0]}: {row[1]}" for row in rows if (row[0], row[1]) not in {(p[0], p[1]) for p in pairs}]
        if unpaired:
            notes.append("audit: no per-item pairing (difference shown without CI) for: " + "; ".join(unpaired))
    sections = [overview] + [s for name in summaries for s in summaries[name].get("sections", [])]
    notes = [f"{name}: {n}" for name, summary in summaries.items() for n in summary.get("notes", [])] + notes
    return {"title": "alignlab audit", "headline": cards, "sections": sections, "notes": notes,
            "results": results + paired_results,
            "studies": {name: {k: v for k, v in s.items() if k not in ("sections", "headline")}
                        for name, s in summaries.items()}}


PAIRED_NOTE = (" Paired comparison: on the items both models answered, the difference (second minus first) with a "
               "percentile bootstrap 95% CI that resamples the same items for both models (10,000 resamples with "
               "the run's seed; 1,000 for P(True) AUROC), and for 0/1 (accuracy-type) metrics the two-sided exact "
               "McNemar p-value. Items are questions (BIG-bench, model-written evals, BBQ, P(True)), sampled CoTs, "
               "attacks, or occupations (Winogender rho). ECE is compared without a CI: resampling repeats "
               "questions, which inflates a binned ECE, so its percentile interval can miss the estimate.")


def _checked(items: ItemValues | None, values: dict[str, float], specs: list[str], notes: list[str],
             where: str) -> ItemValues | None:
    """``items`` when they reproduce every model's headline number; else None, with a note saying so."""
    mismatch = items and reproduces(items, {spec: values.get(spec) for spec in specs})
    if mismatch:
        notes.append(f"{where}: per-item values do not reproduce the headline ({mismatch}); no CI or paired "
                     "statistics for it")
        return None
    return items


def _card_ci(summary: dict[str, Any], label: str, value: float | None, items: ItemValues | None, spec: str,
             seed: int) -> tuple[float, float] | None:
    """The CI of the study's own headline card with this label and value (the first model's), else the
    bootstrap CI over the model's items."""
    if value is None:
        return None
    for card in summary.get("headline", []):
        ci, own = card.get("ci"), card.get("value")
        if card.get("label") == label and ci and None not in ci and isinstance(own, (int, float)) \
                and abs(own - value) <= TOLERANCE:
            return float(ci[0]), float(ci[1])
    return model_ci(items, spec, seed) if items else None


def _prefixed(progress: Progress, name: str) -> Progress:
    return lambda label, done, total: progress(f"{name}: {label}", done, total)


def _text(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
