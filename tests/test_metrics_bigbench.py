"""BIG-bench 1.0.0 metrics (bigbench/api/task_metrics.py) against values worked out by hand.

Each expected value below is derived in its comment from the definitions; none calls BIG-bench (CI does not
have it). The functions were also checked against BIG-bench's own code on random inputs during development.
"""

from __future__ import annotations

import hashlib
import math
import struct

import numpy as np
import pytest

from alignlab.metrics.bigbench import (
    bigbench_expected_calibration_error,
    calibration_multiple_choice_brier_score,
    hashed_argmax,
    log_likelihood,
    macro_f1,
    multiple_choice_grade,
    normalized_log_probs,
    weighted_log_probabilities,
    weighted_probabilities,
)
from alignlab.metrics.text import (
    bleu,
    case_insensitive_str_match,
    exact_str_match,
    numeric_match_with_0_1_relative_error,
    rouge,
    sequence_f1,
)

LN = math.log

# -- multiple_choice_grade ---------------------------------------------------------------------------------


def test_grade_is_mean_target_score_of_the_argmax_choice_with_ragged_rows():
    # example 0: argmax 0 -> score 1; example 1: argmax 1 -> score 0 (three choices). Mean 0.5.
    assert multiple_choice_grade([[-0.1, -2.0], [-3.0, -0.2, -1.0]], [[1, 0], [0, 0, 1]]) == 0.5


def test_grade_uses_raw_target_scores_with_several_correct_or_soft_scores():
    # several correct choices: argmax 1 has score 1; soft scores: argmax 1 has score 0.75. Mean 0.875.
    assert multiple_choice_grade([[-2, -1, -3], [-1, -0.5]], [[1, 1, 0], [0.25, 0.75]]) == 0.875


def _hashed_pick(row: tuple[float, ...]) -> int:
    """BIG-bench's tie-break written out: SHA-256 of the little-endian float64 bytes, modulo the number of
    tied maxima, indexes the tied positions."""
    digest = int(hashlib.sha256(struct.pack(f"<{len(row)}d", *row)).hexdigest(), 16)
    tied = [i for i, v in enumerate(row) if v == max(row)]
    return tied[digest % len(tied)]


@pytest.mark.parametrize(
    ("row", "picked"),
    # The hashes (first hex digits e077.., 8df0.., 7710.., 7733..) make these picks; note that the second and
    # fourth are not the first maximum, so a plain argmax would grade them differently.
    [((-1.0, -1.0), 0), ((-2.0, -2.0), 1), ((-1.0, -1.0, -1.0), 2), ((-1.0, -3.0, -1.0), 2)],
)
def test_grade_breaks_ties_by_hash_of_the_row(row, picked):
    assert _hashed_pick(row) == picked
    one_hot = [[1.0 if i == picked else 0.0 for i in range(len(row))]]
    assert multiple_choice_grade([list(row)], one_hot) == 1.0
    assert multiple_choice_grade([list(row)], [[1.0 - x for x in one_hot[0]]]) == 0.0


def test_normalized_log_probs_subtract_logsumexp():
    # log(0.2), log(0.6) -> logsumexp = log(0.8): normalised log(0.25), log(0.75)
    assert normalized_log_probs([LN(0.2), LN(0.6)]) == pytest.approx([LN(0.25), LN(0.75)])


# -- calibration_multiple_choice_brier_score ---------------------------------------------------------------


def test_brier_sums_over_all_pairs_and_divides_by_the_pair_count():
    # ex 0: p = (.5, .5), t = (1, 0): 1*(.5-1)^2 + 0 + 0 + 1*.5^2 = 0.5
    # ex 1: p = (.8, .2), t = (0, 2)/2 = (0, 1): .8^2 + (.2-1)^2 = 1.28.   (0.5 + 1.28) / 4 pairs = 0.445
    value = calibration_multiple_choice_brier_score([[0.0, 0.0], [LN(0.8), LN(0.2)]], [[1, 0], [0, 2]])
    assert value == pytest.approx(0.445)


def test_brier_with_several_correct_choices_uses_bigbench_form_not_squared_error():
    # p = 1/3 each, t = (1, 1, 0)/2. A correct choice: .5*(1/3-1)^2 + .5*(1/3)^2 = 5/18;
    # the other: (1/3)^2 = 2/18.
    # (5 + 5 + 2)/18 over 3 pairs = 2/9. (Plain squared error would give (1/36 + 1/36 + 1/9)/3 = 1/18.)
    value = calibration_multiple_choice_brier_score([[-1.0, -1.0, -1.0]], [[1, 1, 0]])
    assert value == pytest.approx(2 / 9)


def test_brier_with_scores_summing_to_zero_treats_every_target_as_zero():
    # t = (0, 0): .5^2 + .5^2 = 0.5 over 2 pairs
    assert calibration_multiple_choice_brier_score([[0.0, 0.0]], [[0, 0]]) == pytest.approx(0.25)


def test_brier_and_ece_ignore_a_shift_of_the_log_probs():
    lps, targets = [[-0.3, -1.7, -2.2], [-0.9, -0.6]], [[0, 1, 0], [1, 0]]
    shifted = [[x - 5.0 for x in row] for row in lps]
    brier = calibration_multiple_choice_brier_score(lps, targets)
    assert calibration_multiple_choice_brier_score(shifted, targets) == pytest.approx(brier)
    ece = bigbench_expected_calibration_error(lps, targets)
    assert bigbench_expected_calibration_error(shifted, targets) == pytest.approx(ece)


# -- bigbench_expected_calibration_error -------------------------------------------------------------------


def test_ece_confidence_exactly_k_over_15_goes_to_the_bucket_above_the_edge():
    # A: three equal log-probs -> confidence exactly 1/3 = 5/15; first-argmax guess 0, target 1: wrong.
    # B: probabilities (.35, .33, .32) -> confidence .35, in [5/15, 6/15); guess 0, target 0: right.
    # Bucket 5 = [5/15, 6/15) holds both: |acc .5 - conf (1/3 + .35)/2| = 0.158333...
    # (Were A put in bucket 4 below the edge: (1/3 + .65)/2 = 0.491667.)
    lps = [[0.0, 0.0, 0.0], [LN(0.35), LN(0.33), LN(0.32)]]
    value = bigbench_expected_calibration_error(lps, [[0, 1, 0], [1, 0, 0]])
    assert value == pytest.approx(0.5 - (1 / 3 + 0.35) / 2)


def test_ece_confidence_exactly_one_goes_to_the_last_bucket():
    # A: (0, -inf) -> confidence exactly 1.0, target 1: wrong. B: confidence .95 in [14/15, 1): right.
    # Both in the last bucket: |.5 - (1 + .95)/2| = 0.475. (A bucket of its own would give (1 + .05)/2.)
    value = bigbench_expected_calibration_error([[0.0, -math.inf], [LN(0.95), LN(0.05)]], [[0, 1], [1, 0]])
    assert value == pytest.approx(0.475)


def test_ece_counts_several_correct_choices_as_the_first_one_only():
    # targets (1, 1, 0): argmax of targets is 0; the model's argmax is 1 -> counted wrong.
    # confidence = 1 / (1 + e^-1 + e^-2) = 0.665241; alone in its bucket: |0 - 0.665241|
    value = bigbench_expected_calibration_error([[-1.0, 0.0, -2.0]], [[1, 1, 0]])
    assert value == pytest.approx(1 / (1 + math.exp(-1) + math.exp(-2)))


def test_ece_weights_buckets_by_size():
    # confidences .9 (right), .9 (wrong), .65 (right), 15 buckets: bucket 13 = [13/15, 14/15) holds the two
    # .9s: |.5 - .9| * 2/3; bucket 9 = [9/15, 10/15) holds .65 alone: |1 - .65| * 1/3. Total 1.15/3
    lps = [[LN(0.9), LN(0.1)], [LN(0.9), LN(0.1)], [LN(0.65), LN(0.35)]]
    targets = [[1, 0], [0, 1], [1, 0]]
    assert bigbench_expected_calibration_error(lps, targets) == pytest.approx(1.15 / 3)
    # one bucket: |mean acc 2/3 - mean conf 2.45/3| = 0.15
    assert bigbench_expected_calibration_error(lps, targets, n_buckets=1) == pytest.approx(0.15)


# -- validation --------------------------------------------------------------------------------------------

MC_METRICS = [
    multiple_choice_grade, calibration_multiple_choice_brier_score, bigbench_expected_calibration_error
]


@pytest.mark.parametrize("metric", MC_METRICS)
def test_mc_metrics_reject_bad_shapes(metric):
    with pytest.raises(ValueError, match="2 examples but target_scores has 1"):
        metric([[0.0, 1.0], [0.0, 1.0]], [[1, 0]])
    with pytest.raises(ValueError, match="example 1: 3 log-probabilities but 2 target scores"):
        metric([[0.0, 1.0], [0.0, 1.0, 2.0]], [[1, 0], [1, 0]])
    with pytest.raises(ValueError, match="no examples"):
        metric([], [])
    with pytest.raises(ValueError, match="example 0: no choices"):
        metric([[]], [[]])
    with pytest.raises(ValueError, match="example 0: log_probs"):
        metric([[float("nan"), 0.0]], [[1, 0]])
    with pytest.raises(ValueError, match="example 0: log_probs"):
        metric([[-math.inf, -math.inf]], [[1, 0]])
    with pytest.raises(ValueError, match="example 0: target_scores must be finite"):
        metric([[0.0, 0.0]], [[math.inf, 0]])
    with pytest.raises(ValueError, match="example 0: target_scores must be a sequence of numbers"):
        metric([[0.0, 0.0]], ["10"])


def test_ece_rejects_bad_bucket_counts():
    for n_buckets in (0, -3, 2.5):
        with pytest.raises(ValueError, match="n_buckets"):
            bigbench_expected_calibration_error([[0.0, 1.0]], [[1, 0]], n_buckets=n_buckets)


def test_mc_metrics_accept_numpy_arrays():
    lps = np.array([[-0.1, -2.0], [-3.0, -0.2]])
    assert multiple_choice_grade(lps, np.array([[1, 0], [1, 0]])) == 0.5


# -- text metrics ------------------------------------------------------------------------------------------


def test_exact_str_match_is_membership_in_the_targets():
    # "yes" is a target; "No" matches a bare-string target; " 4" is not "4"; "a" is not the target "abc"
    # (a bare string is one target, not a list of characters). 2 of 4.
    targets = [["Yes", "yes"], "No", ["4"], "abc"]
    assert exact_str_match(targets, ["yes", "No", " 4", "a"]) == 0.5


def test_bleu_of_one_sentence_by_hand():
    # hyp "the cat sat on the mat" vs ref "the cat sat on a mat" (6 tokens each, brevity penalty 1):
    # 1-grams 5/6 (the second "the" is clipped), 2-grams 3/5, 3-grams 2/4, 4-grams 1/3.
    # BLEU = 100 * (5/6 * 3/5 * 1/2 * 1/3) ** (1/4) = 100 * (1/12) ** 0.25
    value = bleu([["the cat sat on a mat"]], ["the cat sat on the mat"])
    assert value == pytest.approx(100 * (1 / 12) ** 0.25)


def test_bleu_is_corpus_level_not_a_mean_of_sentences():
    # "a b c d e" matches fully (5/4/3/2 n-grams); "e f g h" vs "w x y z" matches nothing (4/3/2/1 n-grams).
    # Corpus precisions 5/9, 4/7, 3/5, 2/3; equal lengths: 100 * (120/945) ** (1/4) = 59.69... (a mean of
    # sentence scores would be 50).
    value = bleu([["a b c d e"], ["w x y z"]], ["a b c d e", "e f g h"])
    assert value == pytest.approx(100 * (120 / 945) ** 0.25)


def test_bleu_pads_uneven_reference_lists():
    # example 0 has one reference, example 1 two; the response matching the second reference counts fully.
    value = bleu([["a b c d e"], ["p q r s t", "k l m n o"]], ["a b c d e", "k l m n o"])
    assert value == pytest.approx(100.0)


def test_rouge_keeps_the_best_reference_per_type():
    # response "a b c d". Against "d c b a": rouge1 F 1, rouge2 F 0 (no shared bigram), LCS 1 -> F 1/4.
    # Against "a b x y": rouge1 F 2/4, rouge2 1 of 3 bigrams -> F 1/3, LCS "a b" -> F 1/2.
    # Best per type: rouge1 1 (first), rouge2 1/3 and rougeLsum 1/2 (second); scaled by 100.
    value = rouge([["d c b a", "a b x y"]], ["a b c d"])
    assert value == pytest.approx({"rouge1": 100.0, "rouge2": 100 / 3, "rougeLsum": 50.0})


def test_rouge_averages_examples_and_splits_sentences_for_rouge_lsum():
    # ex 0: identical -> 100 on every type.
    # ex 1: "a b . c d" vs "c d . a b": each " . " becomes a line break, so rougeLsum sees the sentences
    # (a b) (c d)
    # and matches all 4 tokens: F 1 (one unsplit text would give LCS 2 -> F 1/2). The tokenizer drops ".",
    # so rouge1 sees a b c d vs c d a b: F 1; rouge2: bigrams (ab bc cd) vs (cd da ab) share 2 of 3 -> F 2/3.
    value = rouge([["the cat sat"], ["a b . c d"]], ["the cat sat", "c d . a b"])
    assert value == pytest.approx({"rouge1": 100.0, "rouge2": (100 + 200 / 3) / 2, "rougeLsum": 100.0})


# -- the other metrics BIG-bench computes when a task lists them (absent before issue 16) -------------------


def test_case_insensitive_match_strips_and_lowercases_both_sides():
    # " YES " -> "yes" matches target "Yes "; "no" matches ["NO"]; "4 " matches "4"; "a b" is not "ab". 3 of 4.
    assert case_insensitive_str_match([["Yes "], ["NO"], "4", "ab"], [" YES ", "no", "4 ", "a b"]) == 0.75


def test_sequence_f1_is_a_per_position_tag_accuracy_against_the_first_target():
    # ex 0: target "B-PER O O" (3 tags), response "B-PER O B-LOC X" cut to 3 -> 2 of 3 equal -> 66.67
    # ex 1: target "O O", response "O" padded with "O" -> "O O" -> 100; only the first target counts.
    value = sequence_f1([["B-PER O O", "B-PER O B-LOC"], ["O O"]], ["B-PER O B-LOC X", "O"])
    assert value == pytest.approx((200 / 3 + 100) / 2)


def test_numeric_match_within_ten_percent_relative_error():
    # 105 vs 100: 5% ok; 111 vs 100: 11% no; "0.05" vs 0: absolute error 0.05 ok; "ten" unreadable;
    # 7 vs target -5: BIG-bench divides by the signed target, a negative ratio always passes. 3 of 5.
    targets = [["100"], ["100"], ["0"], ["10"], ["-5"]]
    assert numeric_match_with_0_1_relative_error(targets, ["105", "111", "0.05", "ten", "7"]) == 0.6
    with pytest.raises(ValueError, match="exactly one target"):
        numeric_match_with_0_1_relative_error([["1", "2"]], ["1"])


def test_weighted_log_probabilities_and_probabilities_use_absolute_values():
    # ex 0: scores (1, 0), absolute log-probs (ln .5, ln .25): sum t*lp = ln .5; sum t*p = .5
    # ex 1: scores (.5, .5), (ln .2, ln .4): .5 ln .2 + .5 ln .4 = .5 ln .08; .5 * .2 + .5 * .4 = .3
    lps, scores = [[LN(0.5), LN(0.25)], [LN(0.2), LN(0.4)]], [[1, 0], [0.5, 0.5]]
    assert weighted_log_probabilities(lps, scores) == pytest.approx((LN(0.5) + 0.5 * LN(0.08)) / 2)
    assert weighted_probabilities(lps, scores) == pytest.approx((0.5 + 0.3) / 2)


def test_macro_f1_by_hand():
    # truths a, a, b; predictions a, b, b. Label a: tp 1, fp 0, fn 1 -> F1 2/3; b: tp 1, fp 1, fn 0 -> 2/3.
    lps = [[-0.1, -2.0], [-2.0, -0.1], [-2.0, -0.1]]
    choices = [["a", "b"], ["a", "b"], ["a", "b"]]
    assert macro_f1(lps, [[1, 0], [1, 0], [0, 1]], choices) == pytest.approx(2 / 3)
    # a label only ever predicted (c, never true) still counts, with F1 0: (1 + 0) / 2
    assert macro_f1([[-0.1, -2.0], [-2.0, -0.1]], [[1, 0], [1, 0]], [["a", "c"], ["a", "c"]]) == pytest.approx(
        (2 / 3 + 0) / 2)
    with pytest.raises(ValueError, match="exactly one choice scored 1"):
        macro_f1([[-0.1, -2.0]], [[0.5, 0.5]], [["a", "b"]])


def test_log_likelihood_single_and_several_targets():
    # one target each: lp -2 for "a b" (2 words, 3 chars) and -6 for "cdef" (1 word, 4 chars)
    single = log_likelihood([[-2.0], [-6.0]], [["a b"], ["cdef"]])
    assert single == pytest.approx({"log_likelihood": -4.0, "log_likelihood_per_word": (-1.0 - 6.0) / 2,
                                    "log_likelihood_per_char": (-2 / 3 - 1.5) / 2})
    # an example with two targets: logsumexp per example, then the mean; no per-word/char values
    several = log_likelihood([[LN(0.1), LN(0.3)], [LN(0.5)]], [["x", "y"], ["z"]])
    assert several == pytest.approx({"log_likelihood": (LN(0.4) + LN(0.5)) / 2})


def test_hashed_argmax_is_the_graded_choice():
    # (-2, -2): BIG-bench's hash picks index 1 (see test_grade_breaks_ties_by_hash_of_the_row), not the first
    assert hashed_argmax([-2.0, -2.0]) == _hashed_pick((-2.0, -2.0)) == 1


@pytest.mark.parametrize("metric", [exact_str_match, bleu, rouge, case_insensitive_str_match, sequence_f1,
                                    numeric_match_with_0_1_relative_error])
def test_text_metrics_reject_bad_inputs(metric):
    with pytest.raises(ValueError, match="2 examples but responses has 1"):
        metric([["a"], ["b"]], ["a"])
    with pytest.raises(ValueError, match="no examples"):
        metric([], [])
    with pytest.raises(ValueError, match="example 1: no targets"):
        metric([["a"], []], ["a", "b"])
    with pytest.raises(ValueError, match="example 0: response must be a string"):
        metric([["a"]], [None])
    with pytest.raises(ValueError, match="single string"):
        metric(["a"], "a")
