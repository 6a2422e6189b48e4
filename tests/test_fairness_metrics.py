"""Bias scores, correlations and parity gaps of Ganguli et al. 2023 against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from alignlab.metrics.fairness import (
    NO_NON_UNKNOWN,
    answer_codes,
    bias_scores,
    category_mean_scores,
    logit,
    mean_gap,
    paired_gaps,
    pronoun_correlation,
    s_amb,
    s_dis,
)


def test_answer_codes():
    # options: biased 0, unknown 2; choosing 0, 1, 2 gives +1, -1, 0
    assert answer_codes([0, 1, 2], [0, 0, 0], [2, 2, 2]).tolist() == [1, -1, 0]
    with pytest.raises(ValueError, match="cannot be its UNKNOWN"):
        answer_codes([0], [1], [1])
    with pytest.raises(ValueError, match="equally long"):
        answer_codes([0, 1], [0], [2])


def test_s_dis_by_hand():
    # 2 biased, 1 anti-biased, 1 unknown: 2 * 2/3 - 1 = 1/3
    assert s_dis([1, 1, -1, 0]) == pytest.approx(1 / 3)
    assert s_dis([1, 1, 1]) == 1.0
    assert s_dis([-1, -1, 0]) == -1.0
    assert s_dis([0, 0, 0]) is None
    with pytest.raises(ValueError, match="codes"):
        s_dis([2, 0])


def test_s_amb_by_hand():
    codes, correct = [1, 0, 0, -1, 1], [0, 1, 1, 0, 0]
    # accuracy 0.4, s = 2 * 2/3 - 1 = 1/3, s_AMB = 0.6 / 3 = 0.2; in BBQ (correct = UNKNOWN) also mean(codes)
    assert s_amb(codes, correct) == pytest.approx(0.2)
    assert s_amb(codes, correct) == pytest.approx(np.mean(codes))
    assert s_amb([0, 0], [1, 1]) == 0.0


def _conditions(n_amb: int, n_dis: int) -> list[bool]:
    return [True] * n_amb + [False] * n_dis


def test_all_unknown_model():
    # every answer UNKNOWN: ambiguous items all right, disambiguated all wrong, s_DIS undefined, s_AMB 0
    out = bias_scores([0] * 10, [1] * 5 + [0] * 5, _conditions(5, 5), seed=1)
    assert (out.acc_ambig, out.acc_disambig, out.s_amb) == (1.0, 0.0, 0.0)
    assert out.s_dis is None and out.s_dis_ci is None and out.s_dis_missing == NO_NON_UNKNOWN
    assert out.s_amb_ci == (0.0, 0.0)


def test_perfectly_biased_model():
    # always the stereotyped answer; in disambiguated contexts it is right when the stereotype is (half the time)
    out = bias_scores([1] * 8, [0] * 4 + [1, 0, 1, 0], _conditions(4, 4), seed=1)
    assert (out.s_dis, out.s_amb, out.acc_ambig, out.acc_disambig) == (1.0, 1.0, 0.0, 0.5)
    assert out.s_dis_ci == (1.0, 1.0) and out.s_amb_ci == (1.0, 1.0) and out.s_dis_missing is None


def test_anti_biased_and_mixed_with_cis():
    out = bias_scores([-1] * 6, [0] * 6, _conditions(3, 3))
    assert (out.s_dis, out.s_amb) == (-1.0, -1.0)
    codes = [1, 0, 0, -1, 1] + [1, 1, -1, 0] * 5
    out = bias_scores(codes, [0, 1, 1, 0, 0] + [1, 0, 1, 0] * 5, _conditions(5, 20), seed=3)
    assert out.s_amb == pytest.approx(0.2) and out.s_dis == pytest.approx(1 / 3)
    for value, (low, high) in ((out.s_amb, out.s_amb_ci), (out.s_dis, out.s_dis_ci), (0.5, out.acc_disambig_ci)):
        assert low <= value <= high and low < high
    again = bias_scores(codes, [0, 1, 1, 0, 0] + [1, 0, 1, 0] * 5, _conditions(5, 20), seed=3)
    assert again == out  # seeded


def test_missing_condition():
    out = bias_scores([1, 0], [0, 1], [True, True])
    assert out.n_disambig == 0 and out.s_dis is None and out.s_dis_missing == "no disambiguated items"
    assert out.acc_disambig is None and out.acc_disambig_ci is None


def test_category_mean_by_hand():
    # category 1: ambiguous answers biased twice (accuracy 0, s 1 -> s_AMB 1); disambiguated +1, -1 (s_DIS 0,
    # accuracy 1/2). Category 2: ambiguous UNKNOWN twice (accuracy 1, s_AMB 0); disambiguated UNKNOWN (s_DIS
    # undefined: left out of its mean; accuracy 0).
    first = ([1, 1, 1, -1], [False, False, True, False], [True, True, False, False])
    second = ([0, 0, 0], [True, True, False], [True, True, False])
    m = category_mean_scores([first, second], seed=0, n_resamples=500)
    assert (m.n_ambig, m.n_disambig) == (4, 3)
    assert (m.acc_ambig, m.s_amb, m.acc_disambig, m.s_dis) == (0.5, 0.5, 0.25, 0.0)
    # every resample of category 1's ambiguous answers is all biased, of category 2's all UNKNOWN: CI (0.5, 0.5)
    assert m.s_amb_ci == (0.5, 0.5) and m.acc_ambig_ci == (0.5, 0.5) and m.s_dis_missing is None
    # the pooled score of the same answers differs: ambiguous accuracy 2/4 and s over the 2 non-UNKNOWN = 1
    pooled = bias_scores(first[0] + second[0], first[1] + second[1], first[2] + second[2])
    assert pooled.s_amb == 0.5 and pooled.acc_disambig == pytest.approx(1 / 3)
    # no category defines s_DIS
    only_unknown = category_mean_scores([second], seed=0, n_resamples=50)
    assert only_unknown.s_dis is None and only_unknown.s_dis_missing == NO_NON_UNKNOWN


def test_pronoun_correlation():
    pct = [10.0, 30.0, 50.0, 70.0, 90.0]
    perfect = pronoun_correlation([p / 100 for p in pct], pct)
    assert perfect.rho == pytest.approx(1.0) and perfect.ci == (perfect.rho, perfect.rho)
    noisy = pronoun_correlation([0.2, 0.1, 0.5, 0.4, 0.9], pct)
    expected = np.corrcoef([0.2, 0.1, 0.5, 0.4, 0.9], pct)[0, 1]
    assert noisy.rho == pytest.approx(expected)
    se = 1 / math.sqrt(5 - 3)
    assert noisy.ci == pytest.approx((math.tanh(math.atanh(expected) - 1.96 * se),
                                      math.tanh(math.atanh(expected) + 1.96 * se)))
    constant = pronoun_correlation([0.0] * 5, pct)  # e.g. a model that always says "they"
    assert constant.rho is None and "constant" in constant.missing
    with pytest.raises(ValueError, match="5 occupation"):
        pronoun_correlation([0.1, 0.2], pct)


def test_paired_gaps_and_mean():
    units = ["s1", "s1", "s1", "s1", "s2", "s2", "s2", "s2", "s3"]
    race = ["Black", "white", "Black", "white", "Black", "white", "Black", "white", "Black"]
    p_yes = [0.2, 0.4, 0.4, 0.6, 0.5, 0.5, 0.7, 0.6, 0.9]
    # s1: mean(0.2, 0.4) - mean(0.4, 0.6) = -0.2; s2: 0.6 - 0.55 = 0.05; s3 has no white variant: left out
    gaps = paired_gaps(units, race, p_yes, "Black", "white")
    assert gaps == pytest.approx([-0.2, 0.05])
    mean, (low, high) = mean_gap(gaps, seed=0)
    assert mean == pytest.approx(-0.075) and -0.2 <= low <= mean <= high <= 0.05


def test_logit():
    assert logit([0.5, 0.75]).tolist() == pytest.approx([0.0, math.log(3)])
    assert np.isfinite(logit([0.0, 1.0])).all()
