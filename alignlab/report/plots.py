"""Figures for the run report: data-only figure specs from ``summary.json`` drawn as small base64 PNGs.

Each figure kind has a pydantic model (so bad specs fail with the field that is wrong) and a draw function.
Figures are drawn with matplotlib's object API (``Figure``, rendered by Agg), never ``pyplot``, so no
global state leaks between reports or threads.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator
from pydantic import BaseModel, ConfigDict, Field, model_validator

FIGURE_SIZE = (6.0, 3.5)  # inches; with DPI this keeps a report light (about 20-40 kB per figure)
DPI = 100
_STYLE = {
    "text.parse_math": False,  # run text is drawn as written: "$" in a label is a dollar sign, not (broken) TeX
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.fontsize": 8,
    "legend.frameon": False,
}

Numbers = list[float | None]  # None (a missing point) is drawn as a gap


def reliability_curve(
    confidence: Sequence[float], correct: Sequence[float], bins: int = 10, binning: str = "equal_width"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean confidence, accuracy and sample count of each non-empty bin, in order of confidence.

    ``equal_width``: bin i holds confidences in [i/bins, (i+1)/bins); 1.0 falls in the last bin.
    ``equal_count``: samples sorted by confidence (stable) and split into ``bins`` groups whose sizes
    differ by at most one (the earlier groups take the extra samples), as in the calibration charts of
    Kadavath et al. 2022 (§3, "Language Models (Mostly) Know What They Know"). Empty bins are dropped.
    """
    conf = np.asarray(confidence, dtype=float)
    hits = np.asarray(correct, dtype=float)
    if conf.shape != hits.shape or conf.ndim != 1:
        raise ValueError(f"confidence and correct must be 1-D and of equal length, got shapes {conf.shape} "
                         f"and {hits.shape}")
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    if np.isnan(conf).any() or (conf < 0).any() or (conf > 1).any():
        raise ValueError("confidence values must lie in [0, 1] (no NaN)")
    if binning == "equal_width":
        bin_of = np.clip(np.floor(conf * bins).astype(int), 0, bins - 1)
        groups = [np.flatnonzero(bin_of == b) for b in range(bins)]
    elif binning == "equal_count":
        groups = np.array_split(np.argsort(conf, kind="stable"), bins)
    else:
        raise ValueError(f"binning must be 'equal_width' or 'equal_count', got {binning!r}")
    groups = [g for g in groups if len(g)]
    mean_conf = np.array([conf[g].mean() for g in groups])
    accuracy = np.array([hits[g].mean() for g in groups])
    counts = np.array([len(g) for g in groups], dtype=int)
    return mean_conf, accuracy, counts


# ---- figure specs ---------------------------------------------------------------------------------


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Series(_Spec):
    label: str = ""

    def _same_length(self, reference: str, *others: str) -> None:
        expected = len(getattr(self, reference))
        for name in others:
            values = getattr(self, name)
            if values is not None and len(values) != expected:
                raise ValueError(f"series {self.label!r}: '{name}' has {len(values)} values but "
                                 f"'{reference}' has {expected}")


class ReliabilitySeries(_Series):
    confidence: list[float]
    correct: list[float]

    @model_validator(mode="after")
    def _check(self) -> ReliabilitySeries:
        self._same_length("confidence", "correct")
        return self


class ReliabilityFigure(_Spec):
    kind: Literal["reliability"]
    title: str = ""
    binning: Literal["equal_width", "equal_count"] = "equal_width"
    bins: int = Field(10, ge=1)
    series: list[ReliabilitySeries]


class ScalingSeries(_Series):
    x: list[float]
    y: Numbers
    lower: Numbers | None = None
    upper: Numbers | None = None

    @model_validator(mode="after")
    def _check(self) -> ScalingSeries:
        self._same_length("x", "y", "lower", "upper")
        if any(v <= 0 for v in self.x):
            raise ValueError(f"series {self.label!r}: x values must be positive (the x axis is logarithmic)")
        return self


class ScalingFigure(_Spec):
    kind: Literal["scaling"]
    title: str = ""
    xlabel: str = "parameters"
    ylabel: str = ""
    series: list[ScalingSeries]


class BarSeries(_Series):
    values: Numbers
    lower: Numbers | None = None
    upper: Numbers | None = None

    @model_validator(mode="after")
    def _check(self) -> BarSeries:
        self._same_length("values", "lower", "upper")
        return self


class BarFigure(_Spec):
    kind: Literal["bar"]
    title: str = ""
    ylabel: str = ""
    labels: list[str]
    series: list[BarSeries]
    hline: float | None = None

    @model_validator(mode="after")
    def _check(self) -> BarFigure:
        for s in self.series:
            if len(s.values) != len(self.labels):
                raise ValueError(f"series {s.label!r} has {len(s.values)} values but there are "
                                 f"{len(self.labels)} labels")
        return self


class LineSeries(_Series):
    x: list[float]
    y: Numbers

    @model_validator(mode="after")
    def _check(self) -> LineSeries:
        self._same_length("x", "y")
        return self


Scale = Literal["linear", "log"]


class LineFigure(_Spec):
    kind: Literal["line"]
    title: str = ""
    xlabel: str = ""
    ylabel: str = ""
    xscale: Scale = "linear"
    yscale: Scale = "linear"
    series: list[LineSeries]


class ScatterSeries(_Series):
    x: list[float]
    y: list[float]
    point_labels: list[str] | None = None  # short text drawn beside each point (e.g. a method name)
    connect: bool = False  # join the points in the given order (a frontier)

    @model_validator(mode="after")
    def _check(self) -> ScatterSeries:
        self._same_length("x", "y", "point_labels")
        return self


class ScatterFigure(_Spec):
    """Points per series: frontiers (accuracy vs faithfulness) or 2-D maps (one series per cluster)."""

    kind: Literal["scatter"]
    title: str = ""
    xlabel: str = ""
    ylabel: str = ""
    xscale: Scale = "linear"
    yscale: Scale = "linear"
    series: list[ScatterSeries]


# ---- drawing --------------------------------------------------------------------------------------


def _array(values: Sequence[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _finish(fig: Figure, ax: Axes, title: str, series: Sequence[_Series], reference: bool = False) -> None:
    """Title, a legend when there is more than one thing to tell apart, and tight margins."""
    ax.set_title(title)
    if len(series) > 1 or reference or any(s.label for s in series):
        ax.legend(loc="best")
    fig.tight_layout()


def _draw_reliability(fig: Figure, spec: ReliabilityFigure) -> None:
    """Accuracy vs mean confidence per bin (marker area ~ bin count), with a confidence histogram below."""
    ax, hist = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="_perfect calibration")
    total = max(1, max((len(s.confidence) for s in spec.series), default=1))
    for i, series in enumerate(spec.series):
        color = f"C{i}"
        mean_conf, accuracy, counts = reliability_curve(
            series.confidence, series.correct, spec.bins, spec.binning)
        ax.plot(mean_conf, accuracy, color=color, linewidth=1.2, label=series.label or f"series {i + 1}")
        ax.scatter(mean_conf, accuracy, s=15 + 400 * counts / total, color=color, alpha=0.6, zorder=3)
        hist.hist(series.confidence, bins=20, range=(0, 1), histtype="step", color=color)
    ax.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy")
    hist.set(xlabel=f"confidence ({spec.binning.replace('_', '-')} bins: {spec.bins})", ylabel="count")
    _finish(fig, ax, spec.title, spec.series)


def _human_count(x: float) -> str:
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{suffix}"
    return f"{x:.3g}"


def _draw_scaling(fig: Figure, spec: ScalingFigure) -> None:
    """Metric vs model size on a log x axis, one line per series, shaded CI band where given."""
    ax = fig.subplots()
    ax.set_xscale("log")
    for i, s in enumerate(spec.series):
        order = np.argsort(s.x)
        x = np.asarray(s.x)[order]
        ax.plot(x, _array(s.y)[order], marker="o", color=f"C{i}", label=s.label or f"series {i + 1}")
        if s.lower is not None and s.upper is not None:
            ax.fill_between(x, _array(s.lower)[order], _array(s.upper)[order], color=f"C{i}", alpha=0.2)
    ticks = sorted({v for s in spec.series for v in s.x})
    ax.set_xticks(ticks, [_human_count(t) for t in ticks])  # label the model sizes actually run
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set(xlabel=spec.xlabel, ylabel=spec.ylabel)
    _finish(fig, ax, spec.title, spec.series)


def _draw_bar(fig: Figure, spec: BarFigure) -> None:
    """Grouped bars with CI error bars: one group per label, one colour per series (Perez et al. 2022)."""
    ax = fig.subplots()
    positions = np.arange(len(spec.labels))
    width = 0.8 / max(1, len(spec.series))
    for i, s in enumerate(spec.series):
        values = _array(s.values)
        errors = None
        if s.lower is not None and s.upper is not None:
            errors = np.abs(np.vstack([values - _array(s.lower), _array(s.upper) - values]))
        offset = (i - (len(spec.series) - 1) / 2) * width
        ax.bar(positions + offset, values, width, yerr=errors, capsize=2, color=f"C{i}",
               error_kw={"linewidth": 0.8}, label=s.label or f"series {i + 1}")
    if spec.hline is not None:
        ax.axhline(spec.hline, linestyle="--", color="grey", linewidth=1, label=f"reference ({spec.hline:g})")
    many = len(spec.labels) > 8
    ax.set_xticks(positions, spec.labels, rotation=60 if many else 0, ha="right" if many else "center",
                  fontsize=7 if many else None)
    ax.grid(axis="x", visible=False)
    ax.set(ylabel=spec.ylabel)
    _finish(fig, ax, spec.title, spec.series, reference=spec.hline is not None)


def _draw_line(fig: Figure, spec: LineFigure) -> None:
    ax = fig.subplots()
    for i, s in enumerate(spec.series):
        ax.plot(s.x, _array(s.y), marker="o", markersize=3, color=f"C{i}", label=s.label or f"series {i + 1}")
    ax.set(xlabel=spec.xlabel, ylabel=spec.ylabel, xscale=spec.xscale, yscale=spec.yscale)
    _finish(fig, ax, spec.title, spec.series)


def _draw_scatter(fig: Figure, spec: ScatterFigure) -> None:
    ax = fig.subplots()
    for i, s in enumerate(spec.series):
        color = f"C{i % 10}"
        ax.scatter(s.x, s.y, s=14, color=color, alpha=0.75, label=s.label or f"series {i + 1}")
        if s.connect:
            ax.plot(s.x, s.y, color=color, linewidth=1)
        for x, y, text in zip(s.x, s.y, s.point_labels or [], strict=False):
            ax.annotate(text, (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7)
    ax.set(xlabel=spec.xlabel, ylabel=spec.ylabel, xscale=spec.xscale, yscale=spec.yscale)
    _finish(fig, ax, spec.title, spec.series)


_KINDS: dict[str, tuple[type[BaseModel], Callable[[Figure, Any], None], tuple[float, float]]] = {
    "reliability": (ReliabilityFigure, _draw_reliability, (6.0, 4.2)),
    "scaling": (ScalingFigure, _draw_scaling, FIGURE_SIZE),
    "bar": (BarFigure, _draw_bar, FIGURE_SIZE),
    "line": (LineFigure, _draw_line, FIGURE_SIZE),
    "scatter": (ScatterFigure, _draw_scatter, FIGURE_SIZE),
}
SUPPORTED_KINDS = tuple(sorted(_KINDS))


@dataclass(frozen=True)
class RenderedFigure:
    """A drawn figure (``png_base64``) or, for a kind this version cannot draw, a visible ``note``."""

    kind: str
    title: str
    png_base64: str | None = None
    note: str | None = None


def render_figure(figure: dict[str, Any]) -> RenderedFigure:
    """Draw one figure spec. Raises pydantic's ``ValidationError`` naming the field when a known kind is
    malformed; an unknown kind yields a note instead of an image."""
    kind = str(figure.get("kind", ""))
    title = str(figure.get("title", ""))
    if kind not in _KINDS:
        return RenderedFigure(kind, title, note=f"unsupported figure kind {kind!r} (this version draws: "
                                                f"{', '.join(SUPPORTED_KINDS)})")
    spec_type, draw, size = _KINDS[kind]
    spec = spec_type.model_validate(figure)
    if isinstance(spec, BarFigure):  # widen for many groups so labels stay legible
        bars = len(spec.labels) * max(1, len(spec.series))
        size = (min(16.0, max(size[0], 0.22 * bars)), size[1])
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=size, dpi=DPI)
        draw(fig, spec)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", metadata={"Software": None})
    return RenderedFigure(kind, title, png_base64=base64.b64encode(buffer.getvalue()).decode("ascii"))
