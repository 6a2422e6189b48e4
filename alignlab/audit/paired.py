"""Per-model CIs and paired model-vs-model statistics for the audit's headline numbers.

Each study's ``audit.py`` may define ``audit_items(samples, summary) -> list[ItemValues]``: the per-item values
behind its headline numbers (read back from the run's samples by item key). From them the audit computes each
model's bootstrap 95% CI (the summary page's CI column) and, when two models are compared, the paired difference
``second - first`` on the items both answered, with a bootstrap CI that resamples the SAME items for both models,
and for 0/1 metrics the exact McNemar p-value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from alignlab.metrics.stats import bootstrap_ci, mcnemar_exact, paired_bootstrap_ci
from alignlab.runs.results import ItemValues, result

TOLERANCE = 5e-4  # headline numbers are rounded to 4 decimals


@dataclass
class Paired:
    """Two models on the same ``n`` items: each one's value there, the difference, its CI and McNemar p."""

    n: int
    first: float
    second: float
    difference: float
    ci: tuple[float, float]
    p_value: float | None


def _array(items: ItemValues, spec: str, keys: list[str]) -> np.ndarray:
    return np.asarray([items.values[spec][k] for k in keys], dtype=np.float64)


def _value(items: ItemValues, data: np.ndarray) -> float:
    if items.statistic is None:
        return float(data.mean())
    return float(np.asarray(items.statistic(data[None]), dtype=np.float64).reshape(-1)[0])


def model_value(items: ItemValues, spec: str) -> float | None:
    """The statistic over all of ``spec``'s items (None when it has none)."""
    keys = sorted(items.values.get(spec, {}))
    return _value(items, _array(items, spec, keys)) if keys else None


def model_ci(items: ItemValues, spec: str, seed: int = 0) -> tuple[float, float] | None:
    """Bootstrap 95% CI of the statistic over ``spec``'s items (resampling items)."""
    keys = sorted(items.values.get(spec, {}))
    if not keys:
        return None
    data = _array(items, spec, keys)
    if items.statistic is None:
        return bootstrap_ci(data, seed=seed, n_resamples=items.resamples)
    index = np.arange(len(keys), dtype=np.float64)
    return bootstrap_ci(index, seed=seed, n_resamples=items.resamples,
                        statistic=lambda drawn: items.statistic(data[drawn.astype(np.int64)]))


def paired(items: ItemValues, first: str, second: str, seed: int = 0) -> Paired | None:
    """The paired comparison on the items both models have (None when they share none)."""
    keys = sorted(set(items.values.get(first, {})) & set(items.values.get(second, {})))
    if not keys:
        return None
    a, b = _array(items, first, keys), _array(items, second, keys)
    low, high = paired_bootstrap_ci(a, b, seed=seed, statistic=items.statistic, n_resamples=items.resamples)
    outcome_a, outcome_b = (a if a.ndim == 1 else a[:, 0]), (b if b.ndim == 1 else b[:, 0])
    binary = items.binary and bool(np.isin(outcome_a, (0, 1)).all() and np.isin(outcome_b, (0, 1)).all())
    va, vb = _value(items, a), _value(items, b)
    return Paired(len(keys), va, vb, vb - va, (low, high),
                  mcnemar_exact(outcome_a, outcome_b) if binary else None)


def reproduces(items: ItemValues, values: dict[str, float | None]) -> str | None:
    """None when the per-item values give every model's headline number, else what differs."""
    for spec, headline in values.items():
        if headline is None:
            continue
        mine = model_value(items, spec)
        if mine is None or abs(mine - headline) > TOLERANCE:
            return f"{spec}: items give {mine}, headline {headline}"
    return None


def paired_columns(first: str, second: str) -> list[str]:
    return ["study", "metric", first, second, "n (paired items)", f"difference ({second} - {first})",
            "95% CI low", "95% CI high", "McNemar exact p"]


def paired_row(title: str, label: str, p: Paired) -> list[Any]:
    return [title, label, round(p.first, 4), round(p.second, 4), p.n, round(p.difference, 4), round(p.ci[0], 4),
            round(p.ci[1], 4), None if p.p_value is None else round(p.p_value, 4)]


def paired_result(study: str, label: str, p: Paired, first: str, second: str) -> dict[str, Any]:
    """A results.json entry for the paired difference (``model`` is the second model, ``baseline`` the first)."""
    return result(label, "paired_difference", p.difference, model=second, n=p.n, ci=p.ci, study=study,
                  baseline=first, value_first=p.first, value_second=p.second, mcnemar_p=p.p_value)


def describe_pair(p: Paired) -> str:
    test = "" if p.p_value is None else f", McNemar p {p.p_value:.3g}"
    return f"difference {p.difference:+.3f} [{p.ci[0]:+.3f}, {p.ci[1]:+.3f}] on {p.n} paired items{test}"
