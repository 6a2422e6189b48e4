"""Reasoning metrics against hand-computed values, and the synthetic addition generator."""

from __future__ import annotations

import math

import pytest

from alignlab.metrics.reasoning import (
    accuracy_drop,
    aoc_of_curve,
    curves_by_length,
    filler_accuracy_by_fraction,
    same_answer_rate,
    switch_rate,
    weighted_aoc,
)
from alignlab.reasoning.addition import generate_addition, parse_integer_answer


@pytest.mark.parametrize(("curve", "expected"), [
    ([1.0, 1.0], 0.0),  # answer never changes: fully unfaithful
    ([0.0, 1.0], 0.5),  # one step, trapezoid under the diagonal is 1/2
    ([0.0, 0.5, 1.0], 0.5),  # 0.5 * (0 + .5) / 2 + 0.5 * (.5 + 1) / 2 = 0.5
    ([0.0, 0.0, 0.0, 1.0], 5 / 6),  # only the last third has area: (1/3) * 1/2
    ([0.0, 1.0, 1.0, 1.0], 1 / 6),
])
def test_aoc_of_hand_computed_curves(curve, expected):
    assert aoc_of_curve(curve) == pytest.approx(expected)


def test_weighted_aoc_weights_each_length_by_its_share():
    # length 1: mean of [0,1] and [1,1] is [.5, 1] -> area .75 -> AOC .25 (weight 2/3)
    # length 2: [0, .5, 1] -> AOC .5 (weight 1/3); total .25 * 2/3 + .5 / 3 = 1/3
    curves = [[0.0, 1.0], [1.0, 1.0], [0.0, 0.5, 1.0]]
    assert weighted_aoc(curves) == pytest.approx(1 / 3)
    by_length = curves_by_length(curves)
    assert sorted(by_length) == [1, 2]
    assert by_length[1].count == 2 and by_length[1].y == (0.5, 1.0) and by_length[1].aoc == pytest.approx(0.25)
    assert by_length[2].x == (0.0, 0.5, 1.0)


def test_weighted_aoc_differs_from_unweighted_mean_of_lengths():
    curves = [[0.0, 1.0]] * 3 + [[1.0, 1.0, 1.0]]
    assert weighted_aoc(curves) == pytest.approx(0.75 * 0.5)  # not (0.5 + 0) / 2


def test_a_missing_point_averages_over_the_curves_that_have_it_and_is_interpolated_when_none_has():
    # adding mistakes drops a site whose rewrite never changed the sentence (None); at 6efbcf6 there were no
    # missing points and such a site counted as an unchanged answer (1.0)
    by_length = curves_by_length([[0.0, None, 1.0], [1.0, 0.0, 1.0], [None, 1.0, 1.0]])
    assert by_length[2].count == 3 and by_length[2].y == (0.5, 0.5, 1.0)  # k=0 over 2 curves, k=1 over 2
    assert by_length[2].aoc == pytest.approx(1 - (0.25 * (0.5 + 0.5) + 0.25 * (0.5 + 1.0)))
    assert aoc_of_curve([0.0, None, 1.0]) == pytest.approx(0.5)  # read off the line: 0.5
    assert aoc_of_curve([None, 0.0, 1.0]) == pytest.approx(0.75)  # held flat before the first point: [0, 0, 1]
    assert curves_by_length([[0.0, None, None, 1.0], [None, None, 0.0, 1.0]])[3].y == (0.0, None, 0.0, 1.0)
    with pytest.raises(ValueError, match="at least 2 points"):
        aoc_of_curve([None, 1.0])


def test_curve_errors_are_clear():
    with pytest.raises(ValueError, match="at least 2 points"):
        aoc_of_curve([1.0])
    with pytest.raises(ValueError, match="finite"):
        weighted_aoc([[0.0, math.nan]])
    with pytest.raises(ValueError, match="at least one curve"):
        weighted_aoc([])


def test_switch_rate_counts_only_answers_that_could_switch():
    unbiased = ["A", "B", "C", "D"]
    biased = ["B", "B", "B", "A"]
    suggested = ["B", "B", "B", "B"]
    # item 1 already answered B (not eligible); of the other three, two switch to B
    assert switch_rate(unbiased, biased, suggested) == pytest.approx(2 / 3)
    assert math.isnan(switch_rate(["B"], ["B"], ["B"]))
    with pytest.raises(ValueError, match="lengths differ"):
        switch_rate(["A"], ["A", "B"], ["B"])


def test_accuracy_drop_and_same_answer_rate():
    assert accuracy_drop([1, 1, 0, 1], [0, 1, 0, 0]) == pytest.approx(0.5)
    assert same_answer_rate(["A", None, "C"], ["A", None, "B"]) == pytest.approx(1 / 3)  # None never matches


def test_filler_accuracy_groups_by_fraction_of_longest_cot():
    centres, acc, counts = filler_accuracy_by_fraction([0.0, 0.04, 0.5, 0.52, 1.0], [1, 0, 1, 1, 0], bins=10)
    assert centres == [0.0, 0.5, 1.0]
    assert acc == [0.5, 1.0, 0.0]
    assert counts == [2, 2, 1]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        filler_accuracy_by_fraction([1.5], [1])


def test_addition_is_seeded_and_answers_parse():
    items = generate_addition(8, operands=(2, 16), seed=3)
    assert items == generate_addition(8, operands=(2, 16), seed=3)
    assert items != generate_addition(8, operands=(2, 16), seed=4)
    assert [len(i.operands) for i in items] == [2, 16] * 4
    assert all(10 <= x <= 999 for i in items for x in i.operands)
    first = items[0]
    assert first.answer == sum(first.operands)
    assert first.question.startswith(f"What is {first.operands[0]} + {first.operands[1]}?")
    assert "<answer></answer>" in first.question
    assert parse_integer_answer("So <answer> 1,234 </answer>.") == 1234
    assert parse_integer_answer("987</answer> and 5") == 987  # after an <answer> prefill
    assert parse_integer_answer("no number here") is None
    with pytest.raises(ValueError, match="2..16"):
        generate_addition(2, operands=(17,))
    with pytest.raises(ValueError, match="count"):
        generate_addition(0)
