import pytest
from pydantic import ValidationError

from rlhfkit.schema import (
    Annotation,
    PairwiseJudgement,
    PreferenceItem,
    RankingJudgement,
    Response,
    item_to_pairs,
    judgement_to_pairs,
    ranking_to_pairs,
)


def _item(k=3, **kw):
    return PreferenceItem(prompt="p", responses=[Response(text=f"r{i}") for i in range(k)], **kw)


def test_ranking_to_pairs_rule():
    # tiers [[2], [0, 1], [3]]: 2 beats 0,1,3; 0 and 1 (tied) each beat 3; no pair between 0 and 1.
    assert ranking_to_pairs([[2], [0, 1], [3]]) == [(2, 0), (2, 1), (2, 3), (0, 3), (1, 3)]
    assert ranking_to_pairs([[0, 1, 2]]) == []  # all tied: nothing to learn
    assert ranking_to_pairs([[1], [0]]) == [(1, 0)]


def test_pairwise_to_pairs():
    assert judgement_to_pairs(PairwiseJudgement(a=0, b=2, choice="b")) == [(2, 0)]
    for choice in ("tie", "both_bad"):
        assert judgement_to_pairs(PairwiseJudgement(a=0, b=2, choice=choice)) == []


def test_item_to_pairs_carries_weight_and_annotator():
    item = _item(annotations=[Annotation(judgement=RankingJudgement(tiers=[[1], [0], [2]]),
                                         annotator_id="ann", weight=0.5)])
    pairs = item_to_pairs(item)
    assert [(p.chosen, p.rejected) for p in pairs] == [("r1", "r0"), ("r1", "r2"), ("r0", "r2")]
    assert {p.weight for p in pairs} == {0.5} and {p.annotator_id for p in pairs} == {"ann"}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(k=1), "at least 2 responses"),
        (dict(annotations=[Annotation(judgement=RankingJudgement(tiers=[[0], [1]]))]), "every response"),
        (dict(annotations=[Annotation(judgement=PairwiseJudgement(a=0, b=5, choice="a"))]), "refers to response 5"),
        (dict(annotations=[Annotation(judgement=RankingJudgement(tiers=[[0], [1], [2]]), shown_order=[0, 0, 1])]),
         "permutation"),
    ],
)
def test_invalid_items_are_refused(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        _item(**kwargs)


def test_single_response_allowed_only_for_unpaired_feedback():
    PreferenceItem.model_validate({"prompt": "p", "responses": [{"text": "r"}],
                                   "annotations": [{"judgement": {"kind": "binary", "response": 0, "thumbs_up": True}}]})


def test_empty_response_and_unknown_field_refused():
    with pytest.raises(ValidationError, match="empty"):
        Response(text="  ")
    with pytest.raises(ValidationError, match="Extra inputs"):
        Response.model_validate({"text": "x", "txet": "y"})


def test_duplicate_index_in_ranking_refused():
    with pytest.raises(ValidationError, match="twice"):
        RankingJudgement(tiers=[[0, 1], [1]])


def test_json_round_trip_keeps_every_field():
    item = _item(annotations=[Annotation(judgement=RankingJudgement(tiers=[[1, 2], [0]]), critique="meh",
                                         annotator_id="a1", source="simulated", time_spent_s=3.5,
                                         shown_order=[2, 0, 1])])
    assert PreferenceItem.model_validate_json(item.model_dump_json()) == item
