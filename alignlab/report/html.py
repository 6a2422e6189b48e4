"""The run report as one self-contained HTML file: run metadata, headline, one section per study section
(description, tables, figures) and a filterable sample browser.

Everything a study or a model wrote is escaped by jinja2's autoescape; nothing from the run is marked safe.
A Content-Security-Policy allows no network access and only the report's own script (by hash), so even a
rendering bug could not run injected script or load anything.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from alignlab.report.plots import RenderedFigure, render_figure

PREVIEW_CHARS = 160  # longer cell text is cut here, with the full text in a <details>


# ---- the run-directory contract --------------------------------------------------------------------


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ModelEntry(_Open):
    spec: str
    fingerprint_id: str = ""
    fingerprint: dict[str, Any] = {}
    description: dict[str, Any] = {}


class Resume(_Open):
    at: str = ""
    command: str = ""
    versions: dict[str, Any] = {}


class RunManifest(_Open):
    """``manifest.json``; lenient, so a report still renders for a run written by an older version. ``versions``
    (Python and package versions, ``alignlab.runs.run.package_versions``) is recorded at creation and again in
    each ``resumed`` entry."""

    created: str = ""
    command: str = ""
    study: str = ""
    config: dict[str, Any] = {}
    seed: int | None = None
    models: list[ModelEntry] = []
    versions: dict[str, Any] = {}
    resumed: list[Resume] = []
    status: str = "complete"
    error: str = ""  # why a ``failed`` run failed

    @property
    def alignlab_version(self) -> str:
        return str(self.versions.get("alignlab") or "")

    def key_versions(self) -> str:
        """``python 3.11.7, torch 2.5.1, transformers 4.46.0``: the versions that most often explain a difference."""
        return ", ".join(f"{n} {self.versions[n]}" for n in ("python", "torch", "transformers") if n in self.versions)

    def resume_changes(self) -> list[list[str]]:
        """Per resume, ``name old → new`` for each version that differs from the one before (creation or the
        previous resume); a package only one side has shows ``—`` on the other."""
        changes, before = [], self.versions
        for resume in self.resumed:
            after = resume.versions or before  # a resume that recorded nothing changed nothing we know of
            names = sorted(set(before) | set(after))
            changes.append([f"{n} {format_value(before.get(n))} → {format_value(after.get(n))}"
                            for n in names if before.get(n) != after.get(n)])
            before = after
        return changes


class Headline(_Open):
    label: str
    value: int | float | str | None
    ci: tuple[float, float] | None = None
    note: str | None = None


class Table(_Open):
    title: str = ""
    columns: list[str]
    rows: list[list[Any]]

    @model_validator(mode="after")
    def _check(self) -> Table:
        for i, row in enumerate(self.rows):
            if len(row) != len(self.columns):
                raise ValueError(f"rows[{i}] has {len(row)} cells but there are {len(self.columns)} columns")
        return self


class TokenHighlight(_Open):
    """One text shown token by token, each token shaded by its score (red positive, blue negative)."""

    title: str = ""
    tokens: list[str]
    scores: list[float]

    @model_validator(mode="after")
    def _check(self) -> TokenHighlight:
        if len(self.tokens) != len(self.scores):
            raise ValueError(f"{len(self.tokens)} tokens but {len(self.scores)} scores")
        return self


class Section(_Open):
    id: str
    title: str
    description: str = ""
    tables: list[Table] = []
    figures: list[dict[str, Any]] = []
    highlights: list[TokenHighlight] = []
    sample_columns: list[str] = []


class RunSummary(_Open):
    """``summary.json``: headline metrics, sections and notes, all written by the study as data."""

    title: str
    headline: list[Headline] = []
    sections: list[Section] = []
    notes: list[str] = []

    @model_validator(mode="after")
    def _unique_ids(self) -> RunSummary:
        ids = [s.id for s in self.sections]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"section ids must be unique, repeated: {duplicates}")
        return self


def describe_error(source: str, error: ValidationError) -> str:
    """``summary.json: sections[0].tables[1]: rows[2] has 2 cells ...`` for each problem pydantic found."""
    lines = []
    for problem in error.errors():
        where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in problem["loc"])
        lines.append(f"{source}: {where.lstrip('.') or '(top level)'}: {problem['msg']}")
    return "\n".join(lines)


def parse_manifest(manifest: dict[str, Any]) -> RunManifest:
    try:
        return RunManifest.model_validate(manifest)
    except ValidationError as error:
        raise ValueError(describe_error("manifest.json", error)) from None


def parse_summary(summary: dict[str, Any]) -> RunSummary:
    try:
        return RunSummary.model_validate(summary)
    except ValidationError as error:
        raise ValueError(describe_error("summary.json", error)) from None


def check_sample(sample: Any, where: str) -> dict[str, Any]:
    """A sample must be an object with string ``section``, ``model`` and ``key``; ``where`` names it."""
    if not isinstance(sample, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(sample).__name__}")
    for name in ("section", "model", "key"):
        if not isinstance(sample.get(name), str):
            raise ValueError(f"{where}: field {name!r} must be a string, got {sample.get(name)!r}")
    return sample


# ---- formatting -------------------------------------------------------------------------------------


def format_value(value: Any) -> str:
    """One cell's text: floats to 3 decimals (3 significant digits when tiny or huge), JSON for the rest."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "✓" if value else "✗"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
            return f"{value:.3g}"
        return f"{value:.3f}"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if _is_conversation(value):
        return "\n\n".join(f"{m['role']}: {m['content']}" for m in value)
    return json.dumps(_rounded(value), ensure_ascii=False)


def format_ci(ci: tuple[float, float] | None) -> str:
    return "" if ci is None else f"[{format_value(float(ci[0]))}, {format_value(float(ci[1]))}]"


def format_parameters(count: Any) -> str:
    if not isinstance(count, int | float) or isinstance(count, bool):
        return "—" if count is None else str(count)
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if count >= scale:
            return f"{count / scale:.3g}{suffix}"
    return str(count)


def _is_conversation(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
        for m in value)


def _rounded(value: Any) -> Any:
    if isinstance(value, float) and math.isfinite(value):
        return float(f"{value:.4g}")
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


# ---- the view -----------------------------------------------------------------------------------------


@dataclass
class Cell:
    text: str
    preview: str | None = None  # set when text is long: the cell shows this and folds the rest
    numeric: bool = False  # right-aligned

    @classmethod
    def of(cls, value: Any) -> Cell:
        text = format_value(value)
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if len(text) <= PREVIEW_CHARS and text.count("\n") < 4:
            return cls(text, numeric=numeric)
        return cls(text, " ".join(text[:PREVIEW_CHARS].split()) + "…")


@dataclass
class SampleBrowser:
    columns: list[str]
    rows: list[list[Cell]]
    outcomes: list[str]  # per row: "correct", "wrong" or "" (drives a coloured row marker)
    total: int

    @property
    def omitted(self) -> int:
        return self.total - len(self.rows)


@dataclass
class TableView:
    title: str
    columns: list[str]
    rows: list[list[Cell]]

    @classmethod
    def of(cls, table: Table) -> TableView:
        return cls(table.title, table.columns, [[Cell.of(v) for v in row] for row in table.rows])


@dataclass
class ShadedToken:
    text: str
    style: str  # built here from a number only, never from run text
    score: str


@dataclass
class HighlightView:
    title: str
    tokens: list[ShadedToken]

    @classmethod
    def of(cls, highlight: TokenHighlight) -> HighlightView:
        scale = max((abs(v) for v in highlight.scores), default=0.0) or 1.0
        tokens = []
        for text, score in zip(highlight.tokens, highlight.scores, strict=True):
            alpha = min(1.0, abs(score) / scale) * 0.85
            rgb = "220,38,38" if score > 0 else "37,99,235"
            tokens.append(ShadedToken(text, f"background: rgba({rgb},{alpha:.3f})", f"{score:.4g}"))
        return cls(highlight.title, tokens)


@dataclass
class SectionView:
    anchor: str  # index-based, so no run text ever lands in an id
    title: str
    paragraphs: list[str]
    tables: list[TableView]
    figures: list[RenderedFigure]
    samples: SampleBrowser | None
    highlights: list[HighlightView] = field(default_factory=list)


def _outcome(sample: dict[str, Any]) -> str:
    correct = sample.get("correct")
    if isinstance(correct, bool) or correct in (0, 1):
        return "correct" if correct else "wrong"
    return ""


def _sample_browser(section: Section | None, samples: list[dict[str, Any]], limit: int) -> SampleBrowser:
    shown = samples[:limit]
    columns = list(section.sample_columns) if section and section.sample_columns else []
    if not columns:  # no choice made: every field in first-seen order
        columns = list(dict.fromkeys(k for s in shown for k in s if k not in ("section", "model", "key")))
    if "model" not in columns and len({s["model"] for s in samples}) > 1:
        columns.insert(0, "model")
    rows = [[Cell.of(s.get(c, "")) for c in columns] for s in shown]
    return SampleBrowser(columns, rows, [_outcome(s) for s in shown], len(samples))


def _figure(figure: dict[str, Any], where: str) -> RenderedFigure:
    try:
        return render_figure(figure)
    except ValidationError as error:
        raise ValueError(describe_error(f"summary.json: {where}", error)) from None
    except ValueError as error:
        raise ValueError(f"summary.json: {where}: {error}") from None


def build_sections(summary: RunSummary, samples: list[dict[str, Any]], limit: int) -> list[SectionView]:
    """One view per summary section, then one per section id that only the samples mention."""
    by_section: dict[str, list[dict[str, Any]]] = {}
    for sample in samples:
        by_section.setdefault(sample["section"], []).append(sample)
    views = []
    for i, section in enumerate(summary.sections):
        rows = by_section.pop(section.id, [])
        views.append(SectionView(
            anchor=f"s{i}", title=section.title,
            paragraphs=[p.strip() for p in section.description.split("\n\n") if p.strip()],
            tables=[TableView.of(t) for t in section.tables],
            figures=[_figure(f, f"sections[{i}].figures[{j}]") for j, f in enumerate(section.figures)],
            samples=_sample_browser(section, rows, limit) if rows else None,
            highlights=[HighlightView.of(h) for h in section.highlights],
        ))
    for j, (section_id, rows) in enumerate(by_section.items(), start=len(views)):
        views.append(SectionView(f"s{j}", f"Samples: {section_id}", [], [], [],
                                 _sample_browser(None, rows, limit)))
    return views


# ---- rendering ------------------------------------------------------------------------------------------

_FILTER_SCRIPT = """
document.querySelectorAll("input.sample-filter").forEach(function (box) {
  var rows = Array.from(document.getElementById(box.dataset.table).tBodies[0].rows);
  var counter = document.getElementById(box.dataset.counter);
  box.addEventListener("input", function () {
    var query = box.value.trim().toLowerCase();
    var shown = 0;
    rows.forEach(function (row) {
      var match = !query || row.textContent.toLowerCase().indexOf(query) !== -1;
      row.hidden = !match;
      if (match) { shown += 1; }
    });
    counter.textContent = query ? shown + " of " + rows.length + " rows match" : "";
  });
});
"""
_SCRIPT_HASH = base64.b64encode(hashlib.sha256(_FILTER_SCRIPT.encode()).digest()).decode()
_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
)


def render_html(manifest: dict[str, Any], summary: dict[str, Any], samples: list[dict[str, Any]], *,
                max_samples_per_section: int = 300) -> str:
    """The whole report as one HTML string (figures embedded as base64 PNG, no external resources)."""
    run = parse_manifest(manifest)
    parsed = parse_summary(summary)
    checked = [check_sample(s, f"samples[{i}]") for i, s in enumerate(samples)]
    return _ENVIRONMENT.get_template("report.html.j2").render(
        run=run, summary=parsed,
        sections=build_sections(parsed, checked, max_samples_per_section),
        config_json=json.dumps(run.config, indent=2, ensure_ascii=False, default=str),
        format_value=format_value, format_ci=format_ci, format_parameters=format_parameters,
        dumps=lambda v: json.dumps(v, indent=2, ensure_ascii=False, default=str),
        filter_script=Markup(_FILTER_SCRIPT),  # our own constant, never run data
        script_hash=_SCRIPT_HASH,
    )
