"""BIG-bench's multiple-choice metrics, computed exactly as BIG-bench 1.0.0 computes them.

Srivastava et al. 2022, *Beyond the Imitation Game* (arXiv 2206.04615); the definitions are those of
``bigbench/api/task_metrics.py`` in the PyPI ``bigbench`` 1.0.0 release. Each function takes, per example,
the log-probabilities of its choices and the choices' target scores in the same order (the order of the
task.json ``target_scores`` keys, which is the order BIG-bench scores choices in). Examples may have different
numbers of choices.

Quirks kept on purpose, because BIG-bench has them:

- ``multiple_choice_grade`` breaks ties between equal log-probabilities pseudo-randomly but deterministically,
  by a SHA-256 hash of the row's float64 bytes. BIG-bench hashes the log-probabilities it scores with:
  ``normalized_log_probs`` of the model's values, or the raw values for tasks with ``absolute_normalization``.
- The Brier score of a choice with normalised target ``t`` and probability ``p`` is
  ``t (p - 1)^2 + (1 - t) p^2``, which equals ``(p - t)^2`` only for ``t`` in {0, 1}; with several correct
  choices it adds ``t (1 - t)``.
- Target scores are normalised by their sum (all zero when they sum to zero); in the ECE, "correct" means the
  first highest target equals the first highest probability (``numpy.argmax``, no hashing).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
from scipy.special import logsumexp

Rows = Sequence[Sequence[float]]


def multiple_choice_grade(log_probs: Rows, target_scores: Rows) -> float:
    """Mean over examples of the target score of the highest-log-probability choice.

    BIG-bench ``measure_multiple_choice_grade``; ties are broken with BIG-bench's hashed ``argmax``.
    """
    rows = _rows(log_probs, target_scores)
    return sum(float(scores[hashed_argmax(lps)]) for lps, scores in rows) / len(rows)


def weighted_log_probabilities(absolute_log_probs: Rows, target_scores: Rows) -> float:
    """BIG-bench ``measure_weighted_log_probabilities``: mean over examples of ``sum_i t_i log p_i``, with the
    model's absolute (not renormalised) log-probabilities and the raw target scores."""
    rows = _rows(absolute_log_probs, target_scores)
    return sum(float(np.sum(scores * lps)) for lps, scores in rows) / len(rows)


def weighted_probabilities(absolute_log_probs: Rows, target_scores: Rows) -> float:
    """BIG-bench ``measure_weighted_probabilities``: mean over examples of ``sum_i t_i exp(log p_i)``."""
    rows = _rows(absolute_log_probs, target_scores)
    return sum(float(np.sum(scores * np.exp(lps))) for lps, scores in rows) / len(rows)


def macro_f1(log_probs: Rows, target_scores: Rows, choices: Sequence[Sequence[str]]) -> float:
    """BIG-bench ``macro_f1_fn``: the true label is the choice scored 1, the prediction the hashed argmax;
    F1 per label (every label that is true or predicted somewhere, as scikit-learn's ``average="macro"``), then
    their unweighted mean. Like BIG-bench, needs exactly one choice scored 1 and scores summing to 1."""
    rows = _rows(log_probs, target_scores)
    if len(choices) != len(rows):
        raise ValueError(f"choices has {len(choices)} examples but log_probs has {len(rows)}")
    truth, predicted = [], []
    for i, ((lps, scores), names) in enumerate(zip(rows, choices, strict=True)):
        if list(scores).count(1) != 1 or sum(scores.tolist()) != 1:
            raise ValueError(f"example {i}: macro_f1 needs exactly one choice scored 1 and no soft scores")
        truth.append(names[int(np.argmax(scores == 1))])
        predicted.append(names[hashed_argmax(lps)])
    f1s = []
    for label in sorted(set(truth) | set(predicted)):
        tp = sum(t == p == label for t, p in zip(truth, predicted, strict=True))
        fp, fn = predicted.count(label) - tp, truth.count(label) - tp
        f1s.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(f1s))


def log_likelihood(target_log_probs: Rows, targets: Sequence[Sequence[str]]) -> dict[str, float]:
    """BIG-bench ``log_likelihood_fn`` over each example's absolute log-probabilities of its targets.

    When any example has several targets: ``log_likelihood`` = mean over examples of ``logsumexp`` of its
    targets' log-probabilities, alone. Else also per word and per character of the target
    (``log p / len(target.split())``, ``log p / len(target)``).
    """
    if len(target_log_probs) != len(targets) or not targets:
        raise ValueError(f"{len(target_log_probs)} rows of log-probabilities for {len(targets)} examples")
    rows = [np.asarray(row, dtype=np.float64) for row in target_log_probs]
    if any(len(t) > 1 for t in targets):
        return {"log_likelihood": float(np.mean([logsumexp(row) for row in rows]))}
    n = len(rows)
    return {"log_likelihood": sum(float(row[0]) for row in rows) / n,
            "log_likelihood_per_word": sum(float(row[0]) / len(t[0].split()) for row, t in
                                           zip(rows, targets, strict=True)) / n,
            "log_likelihood_per_char": sum(float(row[0]) / len(t[0]) for row, t in zip(rows, targets, strict=True))
            / n}


def calibration_multiple_choice_brier_score(log_probs: Rows, target_scores: Rows) -> float:
    """Multi-category Brier score: summed over every (example, choice) pair, divided by the number of pairs.

    BIG-bench ``measure_calibration_multiple_choice_brier_score``: ``p`` is the softmax of an example's
    log-probabilities, ``t`` its target scores divided by their sum, and each pair adds
    ``t (p - 1)^2 + (1 - t) p^2``.
    """
    rows = _rows(log_probs, target_scores)
    total, pairs = 0.0, 0
    for lps, scores in rows:
        probs, targets = _probabilities(lps, scores)
        total += float(np.sum(targets * (probs - 1) ** 2 + (1 - targets) * probs**2))
        pairs += len(probs)
    return total / pairs


def bigbench_expected_calibration_error(log_probs: Rows, target_scores: Rows, n_buckets: int = 15) -> float:
    """BIG-bench's expected calibration error: ``sum_k (n_k / n) |accuracy_k - confidence_k|``.

    BIG-bench ``measure_expected_calibration_error`` (after Naeini et al. 2015): an example's confidence is
    its highest softmax probability; it is correct when ``argmax`` of its normalised targets equals ``argmax``
    of its probabilities (first index on ties). Buckets are ``n_buckets`` equal-width intervals
    ``[k/n, (k+1)/n)``: a confidence goes to the first bucket whose upper edge ``(k+1)/n`` (a float division)
    is strictly above it, and a confidence of 1.0 (or more, by rounding) to the last bucket. Empty buckets add
    nothing.
    """
    if isinstance(n_buckets, bool) or not isinstance(n_buckets, int) or n_buckets < 1:
        raise ValueError(f"n_buckets must be a positive integer, got {n_buckets!r}")
    rows = _rows(log_probs, target_scores)
    confidences = np.empty(len(rows))
    correct = np.empty(len(rows))
    for i, (lps, scores) in enumerate(rows):
        probs, targets = _probabilities(lps, scores)
        confidences[i] = probs.max()
        correct[i] = float(np.argmax(targets) == np.argmax(probs))

    upper_edges = np.arange(1, n_buckets + 1) / n_buckets  # the same floats as BIG-bench's (j + 1) / n
    buckets = np.minimum(np.searchsorted(upper_edges, confidences, side="right"), n_buckets - 1)
    error = 0.0
    for k in np.unique(buckets):
        members = buckets == k
        error += members.sum() / len(rows) * abs(correct[members].mean() - confidences[members].mean())
    return float(error)


def normalized_log_probs(log_probs: Sequence[float]) -> list[float]:
    """One example's log-probabilities renormalised over its choices, ``x - logsumexp(x)``.

    BIG-bench scores with these unless the task sets ``absolute_normalization``; pass them to
    ``multiple_choice_grade`` to get BIG-bench's tie-breaks.
    """
    row = np.asarray(log_probs, dtype=np.float64)
    return (row - logsumexp(row)).tolist()


# ----------------------------------------------------------------------------------------------------------


def _rows(log_probs: Rows, target_scores: Rows) -> list[tuple[np.ndarray, np.ndarray]]:
    """Validated (log-probs, target scores) float64 rows; raises ValueError naming the example and problem."""
    if len(log_probs) != len(target_scores):
        raise ValueError(
            f"log_probs has {len(log_probs)} examples but target_scores has {len(target_scores)}"
        )
    if len(log_probs) == 0:
        raise ValueError("no examples: log_probs and target_scores are empty")
    rows = []
    for i, (lp_row, score_row) in enumerate(zip(log_probs, target_scores, strict=True)):
        lps = _as_row(lp_row, i, "log_probs")
        scores = _as_row(score_row, i, "target_scores")
        if len(lps) != len(scores):
            raise ValueError(
                f"example {i}: {len(lps)} log-probabilities but {len(scores)} target scores"
            )
        if len(lps) == 0:
            raise ValueError(f"example {i}: no choices")
        if np.isnan(lps).any() or np.isposinf(lps).any() or np.isneginf(lps).all():
            raise ValueError(f"example {i}: log_probs must be finite or -inf, one at least finite: {lps}")
        if not np.isfinite(scores).all():
            raise ValueError(f"example {i}: target_scores must be finite, got {scores.tolist()}")
        rows.append((lps, scores))
    return rows


def _as_row(values: Sequence[float], index: int, name: str) -> np.ndarray:
    if isinstance(values, (str, bytes)):
        raise ValueError(f"example {index}: {name} must be a sequence of numbers, got a string")
    try:
        row = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"example {index}: {name} must be a sequence of numbers ({err})") from err
    if row.ndim != 1:
        raise ValueError(f"example {index}: {name} must be a flat sequence of numbers, got shape {row.shape}")
    return row


def _probabilities(lps: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Softmax of the log-probs (max subtracted first) and the target scores divided by their sum."""
    shifted = np.exp(lps - lps.max())
    probs = shifted / shifted.sum()
    total = sum(scores.tolist())  # summed left to right, as BIG-bench does
    targets = np.zeros_like(scores) if total == 0 else scores / total
    return probs, targets


def hashed_argmax(log_probs: Sequence[float]) -> int:
    """BIG-bench's ``argmax``: among the maximal entries, the one picked by the SHA-256 of the row's float64
    bytes (the choice ``multiple_choice_grade`` grades, so a record's prediction is the graded choice)."""
    row = np.asarray(log_probs, dtype=np.float64)
    best = np.flatnonzero(row == row.max())
    digest = int(hashlib.sha256(row.tobytes()).hexdigest(), 16)
    return int(best[digest % len(best)])
