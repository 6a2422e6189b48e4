"""Settings every fairness study shares (each field a CLI flag), item subsets, and small summary helpers."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from alignlab.fairness.interventions import PROMPT_FORMATS, CotSettings
from alignlab.fairness.prompts import INTERVENTIONS, LABELS

T = TypeVar("T")


@dataclass
class FairnessConfig:
    """Interventions, prompt format, subset sizes and CoT sampling of one fairness study."""

    interventions: list[str] = field(default_factory=lambda: ["q", "if", "cot"])
    prompt_format: str = "raw_hh"
    limit: int | None = None  # items per category (BBQ) or in all (Winogender templates, students, scenarios)
    cot_limit: int | None = None  # at most this many of those under Q+IF+CoT
    seed: int = 0  # subsets, CoT sampling and the bootstrap
    data: str | None = None
    chunk_size: int = 32  # items per model call; a crash loses at most one chunk
    cot_tokens: int = 256  # the paper samples up to 256 tokens of reasoning
    cot_temperature: float = 1.0
    allowed: tuple[str, ...] = ("q", "if", "cot")

    def __post_init__(self) -> None:
        self.interventions = list(dict.fromkeys(i.strip().lower() for i in self.interventions if i.strip()))
        bad = [i for i in self.interventions if i not in self.allowed]
        if bad or not self.interventions:
            raise ValueError(f"interventions must be among {', '.join(self.allowed)}, got {self.interventions}")
        if self.prompt_format not in PROMPT_FORMATS:
            raise ValueError(f"prompt_format must be one of {PROMPT_FORMATS}, got {self.prompt_format!r}")
        for name in ("limit", "cot_limit"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {self.chunk_size}")
        self.cot_settings()  # validates the sampling settings

    def cot_settings(self) -> CotSettings:
        return CotSettings(max_new_tokens=self.cot_tokens, temperature=self.cot_temperature, seed=self.seed)

    def per_intervention(self, items: Sequence[T], cot_items: Sequence[T] | None = None) -> dict[str, list[T]]:
        """Intervention -> its items: all of ``items``, but only ``cot_items`` (default: the first ``cot_limit``)
        under CoT."""
        cot = list(cot_items) if cot_items is not None else list(items)[:self.cot_limit]
        return {i: (cot if i == "cot" else list(items)) for i in self.interventions}

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k != "allowed"}


def seeded_subset(items: Sequence[T], limit: int | None, seed: int, name: str) -> list[T]:
    """All items, or ``limit`` of them drawn without replacement (seeded by ``seed`` and ``name``), in order."""
    if limit is None or len(items) <= limit:
        return list(items)
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    return [items[i] for i in np.sort(rng.choice(len(items), limit, replace=False))]


def ordered(values: Sequence[str], order: Sequence[str]) -> list[str]:
    """Distinct ``values`` sorted by their place in ``order`` (unknown ones last, in first-seen order)."""
    distinct = list(dict.fromkeys(values))
    return sorted(distinct, key=lambda v: order.index(v) if v in order else len(order) + distinct.index(v))


def label(intervention: str) -> str:
    return LABELS.get(intervention, intervention)


def fmt(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


def ci_cells(ci: tuple[float, float] | None) -> list[float | None]:
    return [None, None] if ci is None else [fmt(ci[0]), fmt(ci[1])]


def model_order(manifest: dict[str, Any], samples: Sequence[dict[str, Any]]) -> list[str]:
    return ordered([s["model"] for s in samples], [m["spec"] for m in manifest.get("models", [])])


INTERVENTION_ORDER = list(INTERVENTIONS)


def intervention_bar(cells: dict[str, dict[str, Any]], models: list[str], interventions: list[str], value: str,
                     title: str, ylabel: str, hline: float | None = 0.0, suffix: str = "") -> dict[str, Any]:
    """A bar figure: one bar per model at each intervention, from ``cells["model|intervention" + suffix]``, with
    error bars from ``cells[...][value + "_ci"]`` where present (the paper's figures at one model size)."""
    series = []
    for m in models:
        row = [cells.get(f"{m}|{i}{suffix}", {}) for i in interventions]
        cis = [c.get(f"{value}_ci") for c in row]
        series.append({"label": m, "values": [fmt(c.get(value)) for c in row],
                       "lower": [fmt(ci[0]) if ci else None for ci in cis],
                       "upper": [fmt(ci[1]) if ci else None for ci in cis]})
    return {"kind": "bar", "title": title, "ylabel": ylabel, "labels": [label(i) for i in interventions],
            "series": series, "hline": hline}
