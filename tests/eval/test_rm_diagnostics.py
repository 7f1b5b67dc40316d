"""Reward-model length diagnostics on hand-computed examples."""

import math

import pytest

from rlhfkit.eval.rm_diagnostics import (
    GroupAccuracy,
    accuracy_by_length,
    longer_rejected_accuracy,
    pearson,
    rm_diagnostics,
    score_length_correlation,
    spearman,
)

# five pairs:             1      2      3      4      5
CHOSEN_SCORES = [2.0, 1.0, 0.5, 3.0, 1.0]
REJECTED_SCORES = [1.0, 2.0, 0.5, 1.0, 0.0]
CHOSEN_LEN = [100, 20, 50, 10, 40]
REJECTED_LEN = [10, 90, 50, 30, 40]
# correct (r_c > r_r): T F F(tie) T T
# chosen longer: pair 1 (correct) -> 1/1; rejected longer: pairs 2 (wrong), 4 (right) -> 1/2;
# same length: pairs 3 (tie, wrong), 5 (right) -> 1/2; all: 3/5
ARGS = (CHOSEN_SCORES, REJECTED_SCORES, CHOSEN_LEN, REJECTED_LEN)


def test_accuracy_split_by_length():
    got = accuracy_by_length(*ARGS)
    assert got["all"] == GroupAccuracy(0.6, 3, 5)
    assert got["chosen_longer"] == GroupAccuracy(1.0, 1, 1)
    assert got["rejected_longer"] == GroupAccuracy(0.5, 1, 2)
    assert got["same_length"] == GroupAccuracy(0.5, 1, 2)
    assert longer_rejected_accuracy(*ARGS) == GroupAccuracy(0.5, 1, 2)


def test_empty_group_has_no_accuracy():
    got = accuracy_by_length([1.0], [0.0], [5], [3])
    assert got["rejected_longer"] == GroupAccuracy(None, 0, 0)


def test_pearson_and_spearman_by_hand():
    # x = 1,2,3,4; y = 2,4,5,9: means 2.5, 5; dx = -1.5,-.5,.5,1.5; dy = -3,-1,0,4
    # sum dx dy = 4.5+.5+0+6 = 11; sum dx^2 = 5; sum dy^2 = 26 -> r = 11 / sqrt(130)
    assert pearson([1, 2, 3, 4], [2, 4, 5, 9]) == pytest.approx(11 / math.sqrt(130), abs=1e-12)
    assert spearman([1, 2, 3, 4], [2, 4, 5, 9]) == pytest.approx(1.0, abs=1e-12)  # monotone
    # ties share average ranks: x ranks 1, 2.5, 2.5, 4; y ranks 4, 3, 2, 1
    # dx = -1.5, 0, 0, 1.5; dy = 1.5, .5, -.5, -1.5 -> sum = -4.5; sqrt(4.5 * 5) -> r = -4.5 / sqrt(22.5)
    assert spearman([1, 2, 2, 3], [9, 7, 5, 1]) == pytest.approx(-4.5 / math.sqrt(22.5), abs=1e-12)
    assert pearson([1, 1, 1], [1, 2, 3]) is None


def test_score_length_correlation_pooled_and_margin():
    got = score_length_correlation(*ARGS)
    scores = CHOSEN_SCORES + REJECTED_SCORES
    lengths = CHOSEN_LEN + REJECTED_LEN
    assert got["pooled"]["n"] == 10 and got["margin"]["n"] == 5
    assert got["pooled"]["pearson"] == pytest.approx(pearson(scores, lengths), abs=1e-15)
    # margins 1, -1, 0, 2, 1 vs length differences 90, -70, 0, -20, 0:
    # mean margin .6, mean diff 0; dm = .4, -1.6, -.6, 1.4, .4; sum dm*dl = 36 + 112 + 0 - 28 + 0 = 120
    # sum dm^2 = .16+2.56+.36+1.96+.16 = 5.2; sum dl^2 = 8100+4900+400 = 13400
    assert got["margin"]["pearson"] == pytest.approx(120 / math.sqrt(5.2 * 13400), abs=1e-12)


def test_report_dict_and_bad_input():
    d = rm_diagnostics(*ARGS)
    assert d["longer_rejected"] == {"accuracy": 0.5, "correct": 1, "n": 2}
    assert d["accuracy_by_length"]["all"]["n"] == 5
    with pytest.raises(ValueError, match="equal-length"):
        accuracy_by_length([1.0, 2.0], [1.0], [1, 2], [1, 2])
