"""Kadavath et al. 2022 metrics against values computed by hand from the paper's definitions (App. A)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from alignlab.metrics.honesty import (
    apply_temperature,
    auroc,
    brier_score,
    conditional_accuracy,
    equal_count_bins,
    equal_count_groups,
    fit_temperature,
    kadavath_ece,
    rms_calibration_error,
    temperature_nll,
)

# sorted by confidence: 0.5 (0), 0.6 (0), 0.7 (1) | 0.8 (1), 0.9 (1) -> equal-count bins of sizes 3 and 2
CONF = [0.9, 0.6, 0.8, 0.7, 0.5]
HITS = [1, 0, 1, 1, 0]


def test_equal_count_bins_split_sorted_confidences_with_the_extra_sample_first():
    mean_conf, accuracy, counts = equal_count_bins(CONF, HITS, bins=2)
    assert counts.tolist() == [3, 2]
    assert mean_conf == pytest.approx([0.6, 0.85])
    assert accuracy == pytest.approx([1 / 3, 1.0])


def test_tied_confidences_share_a_bin_so_the_order_of_the_items_does_not_matter():
    # four items at 0.5, two right: at 6efbcf6 a stable sort put whichever came first in the lower bin, so this
    # multiset scored ECE 0.5 in the order 1,1,0,0 and 0.0 in the order 1,0,1,0; now the run of ties is one bin
    conf = [0.5, 0.5, 0.5, 0.5]
    for hits in ([1, 1, 0, 0], [0, 0, 1, 1], [1, 0, 1, 0]):
        assert kadavath_ece(conf, hits, bins=2) == 0.0 and rms_calibration_error(conf, hits, bins=2) == 0.0
    # 0.2 | 0.5 0.5 0.5 | 0.9 0.9, two bins: the cut after 3 items falls inside the 0.5 run, nearer its end
    # (1 item) than its start (2), so it moves to the end: bins {0.2, 0.5 x3} and {0.9 x2}
    conf, hits = [0.2, 0.5, 0.5, 0.5, 0.9, 0.9], [0, 1, 0, 1, 1, 0]
    expected_ece = (abs(0.425 - 0.5) + abs(0.9 - 0.5)) / 2
    expected_rms = math.sqrt(4 / 6 * (0.425 - 0.5) ** 2 + 2 / 6 * 0.4 ** 2)
    for perm in ([0, 1, 2, 3, 4, 5], [5, 4, 3, 2, 1, 0], [3, 0, 4, 2, 5, 1]):
        c, h = [conf[i] for i in perm], [hits[i] for i in perm]
        assert kadavath_ece(c, h, bins=2) == pytest.approx(expected_ece)
        assert rms_calibration_error(c, h, bins=2) == pytest.approx(expected_rms)
        assert sorted(len(g) for g in equal_count_groups(c, 2)) == [2, 4]
    # equally near both ends: the cut moves to the end of the run; cuts that meet leave fewer bins
    assert [g.tolist() for g in equal_count_groups([0.1, 0.5, 0.5, 0.9], 2)] == [[0, 1, 2], [3]]
    assert [g.tolist() for g in equal_count_groups([0.6] * 5 + [0.9] * 5, 10)] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    assert len(equal_count_groups([0.3] * 7, 10)) == 1


def test_kadavath_ece_is_the_unweighted_mean_gap_over_equal_count_bins():
    assert kadavath_ece(CONF, HITS, bins=2) == pytest.approx(((0.6 - 1 / 3) + (1.0 - 0.85)) / 2)


def test_rms_calibration_error_weights_bins_by_their_share_of_samples():
    expected = math.sqrt(3 / 5 * (0.6 - 1 / 3) ** 2 + 2 / 5 * (0.85 - 1.0) ** 2)
    assert rms_calibration_error(CONF, HITS, bins=2) == pytest.approx(expected)


def test_ten_bins_by_default_on_twenty_samples_hold_two_each():
    conf = np.linspace(0.05, 1.0, 20)
    hits = np.tile([0.0, 1.0], 10)  # every bin: one right, one wrong -> accuracy 0.5
    mean_conf, accuracy, counts = equal_count_bins(conf, hits)
    assert counts.tolist() == [2] * 10 and accuracy.tolist() == [0.5] * 10
    pair_means = conf.reshape(10, 2).mean(1)
    assert kadavath_ece(conf, hits) == pytest.approx(np.mean(np.abs(pair_means - 0.5)))


def test_a_perfectly_calibrated_predictor_has_zero_ece():
    conf = [0.5] * 4 + [1.0] * 4
    hits = [1, 0, 1, 0, 1, 1, 1, 1]
    assert kadavath_ece(conf, hits, bins=2) == pytest.approx(0.0)


def test_brier_is_the_mean_squared_gap_and_a_constant_half_scores_a_quarter():
    assert brier_score([0.9, 0.2, 0.6], [1, 0, 0]) == pytest.approx((0.01 + 0.04 + 0.36) / 3)
    assert brier_score([0.5] * 6, [1, 0, 1, 1, 0, 0]) == pytest.approx(0.25)


def test_auroc_counts_correctly_ordered_pairs():
    # positives 0.35 and 0.8 against negatives 0.1 and 0.4: 3 of the 4 pairs are ordered right
    assert auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert auroc([0.3, 0.3], [1, 1]) is None
    with pytest.raises(ValueError, match="0 or 1"):
        auroc([0.3, 0.6], [0.5, 1])


def test_conditional_accuracy_keeps_items_strictly_above_the_threshold():
    result = conditional_accuracy([0.9, 0.5, 0.7, 0.2], [1, 1, 0, 0])
    assert result.selected == 2 and result.total == 4
    assert result.conditional == pytest.approx(0.5) and result.base == pytest.approx(0.5)
    assert conditional_accuracy([0.1, 0.2], [1, 0]).conditional is None


def test_fitted_temperature_matches_the_closed_form_optimum():
    # two options with logprob gap 1; the first is right 2 times in 3 -> optimal sigmoid(1/T) = 2/3, T = 1/ln 2
    rows = [[0.0, -1.0]] * 3
    t = fit_temperature(rows, [0, 0, 1])
    assert t == pytest.approx(1 / math.log(2), abs=1e-3)
    assert temperature_nll(rows, [0, 0, 1], t) < temperature_nll(rows, [0, 0, 1], 1.0)


def test_apply_temperature_handles_rows_with_different_option_counts():
    probs = apply_temperature([[0.0, math.log(0.5)], [0.0, 0.0, 0.0]], 1.0)
    assert probs[0] == pytest.approx([2 / 3, 1 / 3]) and probs[1] == pytest.approx([1 / 3] * 3)
    flat = apply_temperature([[0.0, -2.0]], 2.0)[0]
    assert flat[0] == pytest.approx(1 / (1 + math.exp(-1.0)))


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match="confidence has 2 values but correct has 3"):
        kadavath_ece([0.1, 0.2], [0, 1, 1])
    with pytest.raises(ValueError, match="lie in"):
        brier_score([1.2], [1])
    with pytest.raises(ValueError, match="valid option index"):
        fit_temperature([[0.0, -1.0]], [2])
    with pytest.raises(ValueError, match="positive"):
        apply_temperature([[0.0]], 0.0)
