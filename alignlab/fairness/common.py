"""Settings every fairness study shares (each field a CLI flag), item subsets, and small summary helpers."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from alignlab.fairness.prompts import INTERVENTIONS, LABELS
from alignlab.runs.results import result

T = TypeVar("T")


def seeded_subset(items: Sequence[T], limit: int | None, seed: int, name: str) -> list[T]:
    """All items, or ``limit`` of them drawn without replacement (seeded by ``seed`` and ``name``), in order."""
    if limit is None or len(items) <= limit:
        return list(items)
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    return [items[i] for i in np.sort(rng.choice(len(items), limit, replace=False))]


def stratified_subset(items: Sequence[T], limit: int | None, seed: int, name: str, stratum: Callable[[T], str],
                      strata: Sequence[str]) -> list[T]:
    """All items, or ``limit`` of them drawn without replacement within each stratum (seeded by ``seed``, ``name``
    and the stratum), in their original order. Each stratum (in ``strata`` order; others after, first seen first)
    gets its share of ``limit`` by its size, rounded by largest remainder (ties to the earlier stratum)."""
    if limit is None or len(items) <= limit:
        return list(items)
    groups: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        groups.setdefault(stratum(item), []).append(i)
    order = ordered(list(groups), strata)
    quotas = [limit * len(groups[g]) / len(items) for g in order]
    counts = [int(q) for q in quotas]
    by_remainder = sorted(range(len(order)), key=lambda k: (-(quotas[k] - counts[k]), k))
    for k in by_remainder[:limit - sum(counts)]:
        counts[k] += 1
    picked = [i for g, n in zip(order, counts, strict=True) for i in seeded_subset(groups[g], n, seed, f"{name}|{g}")]
    return [items[i] for i in sorted(picked)]


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


def metric_results(metrics: dict[str, dict[str, Any]], task: str, n_of: dict[str, str] | None = None
                   ) -> list[dict[str, Any]]:
    """``results.json`` entries from a summary's ``metrics`` (``"model|intervention[|category]" -> values``): one
    per numeric value, with its ``<name>_ci`` and the count ``n_of[name]`` (else the first ``n``-like field)."""
    entries = []
    for key, values in metrics.items():
        model, intervention, *rest = key.split("|")
        counts = [k for k in values if k == "n" or k.startswith("n_")]
        for name, value in values.items():
            if name in counts or name.endswith("_ci") or isinstance(value, bool) or \
                    not isinstance(value, (int, float, type(None))):
                continue
            count = values.get((n_of or {}).get(name, counts[0] if counts else ""))
            entries.append(result(f"{task}/{rest[0]}" if rest else task, name, value, model=model,
                                  n=None if count is None else int(count), ci=values.get(f"{name}_ci"),
                                  intervention=intervention))
    return entries
