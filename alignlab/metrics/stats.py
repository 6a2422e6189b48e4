"""Shared statistics for every study: seeded percentile bootstrap CIs, Pearson r with its Fisher-z CI.

Pure functions on arrays; each study's metrics module builds on these rather than writing its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

Z_95 = 1.96  # the normal quantile the papers use for 95% intervals
BOOTSTRAP_RESAMPLES = 10_000


def finite_vector(values: Sequence[float], name: str) -> np.ndarray:
    """``values`` as a non-empty flat float64 array of finite numbers, or a ValueError naming ``name``."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a flat sequence of numbers, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite numbers")
    return array


def bootstrap_ci(values: Sequence[float], *, seed: int, confidence: float = 0.95,
                 n_resamples: int = BOOTSTRAP_RESAMPLES,
                 statistic: Callable[[np.ndarray], np.ndarray] | None = None) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` (default: the mean) over ``values``.

    ``n_resamples`` resamples of ``len(values)`` draws with replacement from ``numpy.random.default_rng(seed)``;
    the interval is the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles (linear interpolation)
    of the resampled statistics. ``statistic`` maps a ``(resamples, n)`` array to one value per row.
    """
    data = finite_vector(values, "values")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")
    stat = statistic or (lambda rows: rows.mean(axis=1))
    rng = np.random.default_rng(seed)
    block = max(1, 2_000_000 // data.size)  # bound memory: at most ~2M draws at a time
    stats = []
    for start in range(0, n_resamples, block):
        rows = min(block, n_resamples - start)
        stats.append(np.asarray(stat(data[rng.integers(0, data.size, size=(rows, data.size))]), dtype=np.float64))
    resampled = np.concatenate(stats)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(resampled, [alpha, 1 - alpha])
    return float(low), float(high)


def pearson_r(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson's product-moment correlation of ``x`` and ``y``."""
    a, b = finite_vector(x, "x"), finite_vector(y, "y")
    if a.size != b.size:
        raise ValueError(f"x has {a.size} values but y has {b.size}")
    if a.size < 2:
        raise ValueError("Pearson r needs at least two points")
    da, db = a - a.mean(), b - b.mean()
    denominator = np.sqrt((da * da).sum() * (db * db).sum())
    if denominator == 0:
        raise ValueError("Pearson r is undefined when x or y is constant")
    return float(np.clip((da * db).sum() / denominator, -1.0, 1.0))


def fisher_ci(r: float, n: int, z: float = Z_95) -> tuple[float, float]:
    """95% interval of a Pearson r over ``n`` pairs: ``tanh(atanh(r) +- z / sqrt(n - 3))``."""
    if not -1 <= r <= 1:
        raise ValueError(f"r must lie in [-1, 1], got {r}")
    if n < 4:
        raise ValueError(f"the Fisher z interval needs n >= 4 pairs, got {n}")
    if abs(r) == 1:
        return r, r
    centre, se = np.arctanh(r), 1 / np.sqrt(n - 3)
    return float(np.tanh(centre - z * se)), float(np.tanh(centre + z * se))


def paired_bootstrap_ci(first: Sequence[float] | np.ndarray, second: Sequence[float] | np.ndarray, *, seed: int,
                        confidence: float = 0.95, n_resamples: int = BOOTSTRAP_RESAMPLES,
                        statistic: Callable[[np.ndarray], np.ndarray] | None = None) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(second) - statistic(first)`` over paired items.

    Row ``i`` of ``first`` and of ``second`` is the same item measured on two models; every resample draws the
    SAME item indices for both, so the interval reflects the paired design. Rows may be numbers or equal-length
    rows of numbers (e.g. value and weight). ``statistic`` maps a ``(resamples, n, ...)`` batch to one value per
    resample (default: the mean of 1-D values). Draws come from ``numpy.random.default_rng(seed)`` as in
    :func:`bootstrap_ci`.
    """
    a, b = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    if a.shape != b.shape or a.ndim not in (1, 2) or a.shape[0] == 0:
        raise ValueError(f"paired values need the same non-empty shape (n,) or (n, k), got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("paired values must be finite numbers")
    if statistic is None and a.ndim != 1:
        raise ValueError("rows of several numbers need a statistic")
    both = np.stack([a, b], axis=1)  # (n, 2, ...): resampling rows keeps each item's pair together

    def difference(rows: np.ndarray) -> np.ndarray:
        if statistic is None:
            return rows[:, :, 1].mean(axis=1) - rows[:, :, 0].mean(axis=1)
        return np.asarray(statistic(rows[:, :, 1]), dtype=np.float64) - np.asarray(statistic(rows[:, :, 0]),
                                                                                   dtype=np.float64)

    indices = np.arange(a.shape[0], dtype=np.float64)
    return bootstrap_ci(indices, seed=seed, confidence=confidence, n_resamples=n_resamples,
                        statistic=lambda drawn: difference(both[drawn.astype(np.int64)]))


def weighted_mean(rows: np.ndarray) -> np.ndarray:
    """A bootstrap statistic for rows ``(value, weight)``: ``sum(w v) / sum(w)`` over the last-but-one axis (e.g. a
    mean of subtask means, with weight ``1 / (subtasks x items in the subtask)``)."""
    return (rows[..., 0] * rows[..., 1]).sum(axis=-1) / rows[..., 1].sum(axis=-1)


def mcnemar_exact(first: Sequence[float], second: Sequence[float]) -> float:
    """Two-sided exact McNemar (sign) test p-value for paired 0/1 outcomes of two models on the same items.

    Only discordant items count: ``b`` items right for ``first`` only, ``c`` for ``second`` only; under the null
    each discordant item is a fair coin, so ``p = min(1, 2 * P[Binomial(b + c, 1/2) <= min(b, c)])`` (1 when no
    item is discordant).
    """
    a, b_ = finite_vector(first, "first"), finite_vector(second, "second")
    if a.size != b_.size:
        raise ValueError(f"first has {a.size} values but second has {b_.size}")
    if not (np.isin(a, (0, 1)).all() and np.isin(b_, (0, 1)).all()):
        raise ValueError("McNemar's test needs 0/1 outcomes")
    only_first, only_second = int(((a == 1) & (b_ == 0)).sum()), int(((a == 0) & (b_ == 1)).sum())
    discordant = only_first + only_second
    if discordant == 0:
        return 1.0
    tail = sum(math.comb(discordant, k) for k in range(min(only_first, only_second) + 1))
    return float(min(1.0, 2 * tail / 2 ** discordant))
