"""Measured length and position biases of labels, by hand and on simulated annotators."""

import math
import random

import pytest

from rlhfkit.feedback.bias import label_biases
from rlhfkit.feedback.simulate import AnnotatorPool, SimulatedAnnotator
from rlhfkit.schema import Annotation, PairwiseJudgement, PreferenceItem, RankingJudgement, Response


def test_counts_by_hand():
    item = PreferenceItem(id="x", prompt="q", responses=[Response(text="a"), Response(text="bbb"), Response(text="cc")])
    anns = [
        # ranking 1 > 2 > 0 shown as 0,1,2: pairs (1,2) (1,0) (2,0): longer wins 3/3; first shown wins 1/3
        Annotation(judgement=RankingJudgement(tiers=[[1], [2], [0]]), annotator_id="h", shown_order=[0, 1, 2]),
        # pairwise 0 vs 2, chose a=0 (shorter), shown 2 first: longer 0/1, first 0/1
        Annotation(judgement=PairwiseJudgement(a=2, b=0, choice="b"), annotator_id="s", source="simulated",
                   shown_order=[2, 0, 1]),
        # a tie gives no pair; no shown order -> no position count
        Annotation(judgement=PairwiseJudgement(a=0, b=1, choice="tie"), annotator_id="s", source="simulated"),
        Annotation(judgement=PairwiseJudgement(a=0, b=1, choice="b")),
    ]
    got = label_biases([item.model_copy(update={"annotations": anns})])
    h, s, unknown, every = got["h"], got["s"], got["(unknown)"], got["(all)"]
    assert (h.n_pairs, h.longer_chosen, h.first_shown_chosen, h.source) == (3, 1.0, pytest.approx(1 / 3), "human")
    assert (s.n_pairs, s.longer_chosen, s.first_shown_chosen, s.source) == (1, 0.0, 0.0, "simulated")
    assert (unknown.n_pairs, unknown.longer_chosen, unknown.first_shown_chosen, unknown.n_position_pairs) == (1, 1.0, None, 0)
    assert (every.n_pairs, every.n_length_pairs, every.n_position_pairs, every.source) == (5, 5, 4, "mixed")
    assert every.longer_chosen == pytest.approx(4 / 5) and every.first_shown_chosen == pytest.approx(1 / 4)


def test_simulated_biases_show_up():
    # gold is flat (every answer scores 0), so only the biases decide:
    # P(first shown wins) = sigmoid(position_bias); P(longer wins) = sigmoid(length_bias * 1) here
    rng = random.Random(0)
    items = [PreferenceItem(id=f"i{n}", prompt="q", responses=[Response(text="x" * rng.randrange(1, 50)),
                                                             Response(text="y" * rng.randrange(1, 50))])
             for n in range(3000)]
    flat = lambda p, t: 0.0  # noqa: E731
    pos = AnnotatorPool([SimulatedAnnotator("first", flat, position_bias=1.0)], seed=1).label_items(items, "pairwise")
    b = label_biases(pos)["first"]
    p = 1 / (1 + math.exp(-1.0))
    assert abs(b.first_shown_chosen - p) < 4 * math.sqrt(p * (1 - p) / b.n_position_pairs)
    assert abs(b.longer_chosen - 0.5) < 4 * math.sqrt(0.25 / b.n_length_pairs)
    # 20 logits per character of difference: the longer answer always wins
    long = AnnotatorPool([SimulatedAnnotator("long", flat, length_bias=2000.0)], seed=2).label_items(items, "pairwise")
    assert label_biases(long)["long"].longer_chosen == 1.0
