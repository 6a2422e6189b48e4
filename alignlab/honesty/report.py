"""Metric rows shared by the honesty studies (data only; the report package draws them)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from alignlab.metrics.honesty import (
    auroc,
    brier_score,
    conditional_accuracy,
    kadavath_ece,
    rms_calibration_error,
)


def fmt(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


def calibration_row(confidence: Sequence[float], correct: Sequence[float]) -> dict[str, Any]:
    """n, accuracy, ECE, RMS, Brier and AUROC of a top-prediction confidence against its correctness."""
    bins = min(10, len(confidence))
    return {"n": len(confidence), "accuracy": float(np.mean(correct)),
            "ece": kadavath_ece(confidence, correct, bins), "rms": rms_calibration_error(confidence, correct, bins),
            "brier": brier_score(confidence, correct), "auroc": auroc(confidence, correct)}


def p_true_row(p_true: Sequence[float], is_true: Sequence[float]) -> dict[str, Any]:
    """P(True) calibrated against whether the proposal is true: the :func:`calibration_row` metrics, with accuracy
    the share where ``P(True) >= 0.5`` (True is the top option, as argmax picks it on a tie) agrees with the truth,
    and ``base_rate`` the share of true proposals."""
    p = np.asarray(p_true, dtype=float)
    y = np.asarray(is_true, dtype=float)
    return {**calibration_row(p_true, is_true), "accuracy": float(np.mean((p >= 0.5) == (y == 1.0))),
            "base_rate": float(np.mean(y))}


def self_evaluation_row(p_true: Sequence[float], correct: Sequence[float]) -> dict[str, Any]:
    """AUROC, Brier, ECE and accuracy conditional on P(True) > 0.5 (§4, App. A) of binary outcomes."""
    cond = conditional_accuracy(p_true, correct)
    bins = min(10, len(p_true))
    return {"n": len(p_true), "auroc": auroc(p_true, correct), "brier": brier_score(p_true, correct),
            "ece": kadavath_ece(p_true, correct, bins), "base_accuracy": cond.base,
            "conditional_accuracy": cond.conditional, "selected": cond.selected}
