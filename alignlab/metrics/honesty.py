"""Calibration and self-evaluation metrics of Kadavath et al. 2022 ("Language Models (Mostly) Know What They
Know", arXiv 2207.05221), as defined in the paper's glossary (Appendix A) and used in §3-§5.

Pure functions on arrays. ``kadavath_ece`` is deliberately separate from BIG-bench's
``expected_calibration_error`` (15 equal-width buckets, ``alignlab.metrics.bigbench``): the paper uses
**10 equal-count bins** on the **top prediction only**, ``ECE = (1/10) sum_b |conf_b - acc_b|``.

Tied confidences always share a bin (:func:`equal_count_groups`), so ECE and RMS depend only on the multiset of
(confidence, correct) pairs, not on the order the items come in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax
from sklearn.metrics import roc_auc_score

from alignlab.metrics.stats import finite_vector

PAPER_TEMPERATURE = 2.5  # §3.1: T = 2.5 repairs most of an RLHF policy's miscalibration


def _pair(confidence: Sequence[float], correct: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    conf = finite_vector(confidence, "confidence")
    hits = finite_vector(correct, "correct")
    if conf.size != hits.size:
        raise ValueError(f"confidence has {conf.size} values but correct has {hits.size}")
    if (conf < 0).any() or (conf > 1).any():
        raise ValueError("confidence values must lie in [0, 1]")
    if (hits < 0).any() or (hits > 1).any():
        raise ValueError("correct values must lie in [0, 1]")
    return conf, hits


def equal_count_groups(confidence: Sequence[float], bins: int = 10) -> list[np.ndarray]:
    """Indices of each equal-count bin, least confident first; tied confidences always share a bin.

    The samples are sorted by confidence and cut where ``numpy.array_split`` would cut them (sizes differ by at
    most one, the earlier bins take the extra samples). A cut that falls inside a run of equal confidences moves
    to the nearer end of the run (to its end when both are equally near), so the run stays in one bin; bins left
    empty are dropped. The bins therefore depend only on the multiset of confidences, never on input order.
    """
    conf = finite_vector(confidence, "confidence")
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    order = np.argsort(conf, kind="stable")
    ranked = conf[order]
    sizes = [len(g) for g in np.array_split(ranked, bins)]
    cuts = [0]
    for cut in np.cumsum(sizes)[:-1].tolist():
        if 0 < cut < ranked.size and ranked[cut - 1] == ranked[cut]:  # the cut splits a run of ties
            start = int(np.searchsorted(ranked, ranked[cut], side="left"))
            end = int(np.searchsorted(ranked, ranked[cut], side="right"))
            cut = start if cut - start < end - cut else end
        cuts.append(cut)
    cuts.append(ranked.size)
    return [order[a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=True) if b > a]


def equal_count_bins(confidence: Sequence[float], correct: Sequence[float], bins: int = 10
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean confidence, accuracy and size of each equal-count bin (:func:`equal_count_groups`: ties kept in one
    bin, empty bins dropped)."""
    conf, hits = _pair(confidence, correct)
    groups = equal_count_groups(conf, bins)
    return (np.array([conf[g].mean() for g in groups]), np.array([hits[g].mean() for g in groups]),
            np.array([len(g) for g in groups]))


def kadavath_ece(confidence: Sequence[float], correct: Sequence[float], bins: int = 10) -> float:
    """ECE of Kadavath et al. (App. A): ``(1/B) sum_b |conf_b - acc_b|`` over ``B`` equal-count bins.

    For multiple choice pass the top prediction's probability and whether it was right. ``B`` counts the bins
    that hold samples: where ties merge bins (:func:`equal_count_groups`), the mean is over fewer than ``bins``.
    """
    mean_conf, accuracy, _ = equal_count_bins(confidence, correct, bins)
    return float(np.mean(np.abs(mean_conf - accuracy)))


def rms_calibration_error(confidence: Sequence[float], correct: Sequence[float], bins: int = 10) -> float:
    """RMS calibration error (App. A): ``sqrt(sum_b w_b (conf_b - acc_b)^2)``, ``w_b`` the fraction in bin b."""
    mean_conf, accuracy, counts = equal_count_bins(confidence, correct, bins)
    weights = counts / counts.sum()
    return float(np.sqrt(np.sum(weights * (mean_conf - accuracy) ** 2)))


def brier_score(probability: Sequence[float], outcome: Sequence[float]) -> float:
    """``mean (p - y)^2`` (App. A); 0.25 for a constant 0.5 on a binary task."""
    p, y = _pair(probability, outcome)
    return float(np.mean((p - y) ** 2))


def auroc(score: Sequence[float], label: Sequence[float]) -> float | None:
    """Area under the ROC curve of ``score`` for binary ``label`` (sklearn); None when only one class occurs."""
    s = finite_vector(score, "score")
    y = finite_vector(label, "label")
    if s.size != y.size:
        raise ValueError(f"score has {s.size} values but label has {y.size}")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("label values must be 0 or 1 (binarise soft labels first)")
    if len(np.unique(y)) < 2:
        return None
    return float(roc_auc_score(y, s))


@dataclass(frozen=True)
class ConditionalAccuracy:
    """Accuracy on the items the model marks P(True) > threshold, next to the base accuracy (§4, Fig. 12)."""

    conditional: float | None  # None when no item passes the threshold
    base: float
    selected: int
    total: int


def conditional_accuracy(p_true: Sequence[float], correct: Sequence[float], threshold: float = 0.5
                         ) -> ConditionalAccuracy:
    p, hits = _pair(p_true, correct)
    keep = p > threshold
    conditional = float(hits[keep].mean()) if keep.any() else None
    return ConditionalAccuracy(conditional, float(hits.mean()), int(keep.sum()), int(p.size))


# -- temperature scaling ------------------------------------------------------------------------------------
def _padded(logprobs: Sequence[Sequence[float]]) -> np.ndarray:
    """Ragged rows of option logprobs as one ``(items, max options)`` array padded with -inf (probability 0)."""
    rows = [np.asarray(r, dtype=np.float64) for r in logprobs]
    if not rows or any(r.ndim != 1 or r.size == 0 for r in rows):
        raise ValueError("logprobs must be a non-empty list of non-empty rows of option logprobs")
    if any(not np.isfinite(r).all() for r in rows):
        raise ValueError("logprobs must be finite numbers")
    out = np.full((len(rows), max(r.size for r in rows)), -np.inf)
    for i, r in enumerate(rows):
        out[i, :r.size] = r
    return out


def apply_temperature(logprobs: Sequence[Sequence[float]], temperature: float) -> list[list[float]]:
    """Option probabilities ``softmax(logprobs / T)`` of each item (rows may differ in length)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    probs = np.exp(log_softmax(_padded(logprobs) / temperature, axis=1))
    return [probs[i, :len(row)].tolist() for i, row in enumerate(logprobs)]


def temperature_nll(logprobs: Sequence[Sequence[float]], answers: Sequence[int], temperature: float) -> float:
    """Mean negative log-likelihood of the correct options after scaling by ``temperature``."""
    scaled = log_softmax(_padded(logprobs) / temperature, axis=1)
    return float(-scaled[np.arange(len(answers)), np.asarray(answers, dtype=int)].mean())


def fit_temperature(logprobs: Sequence[Sequence[float]], answers: Sequence[int],
                    bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """The ``T`` that minimises the NLL of the correct options (bounded scalar search, scipy).

    Fit on a held-out split, then apply to the evaluation split, as temperature scaling prescribes.
    """
    logits = _padded(logprobs)
    gold = np.asarray(answers, dtype=int)
    sizes = np.array([len(r) for r in logprobs])
    if gold.shape != (logits.shape[0],) or (gold < 0).any() or (gold >= sizes).any():
        raise ValueError("answers must hold one valid option index per item")
    result = minimize_scalar(lambda t: temperature_nll(logprobs, gold, t), bounds=bounds, method="bounded",
                             options={"xatol": 1e-4})
    return float(result.x)
