"""Judgement kinds the app collects, beyond the schema's single-judgement ones.

Ratings (1-7 Likert) and thumbs up/down judge one response each (``RatingJudgement``,
``BinaryJudgement`` in ``rlhfkit.schema``). A rating or thumbs project shows all K responses of
an item and collects one judgement per response in a single submission: the app stores them
together as ``{"kind": "per_response", "judgements": [...]}`` (one row per assignment, so
overlap, leases and idempotency work as for rankings), and the export writes them as K schema
annotations. Nothing outside the feedback app sees the ``per_response`` wrapper.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from rlhfkit.schema import (
    AllBadJudgement,
    BinaryJudgement,
    PairwiseJudgement,
    RankingJudgement,
    RatingJudgement,
)

LIKERT_MIN, LIKERT_MAX = 1, 7
PER_RESPONSE_MODES = {"rating": "rating", "binary": "binary"}  # project mode -> judgement kind

OneResponse = Annotated[Union[BinaryJudgement, RatingJudgement], Field(discriminator="kind")]


class PerResponseJudgement(BaseModel):
    """One rating or thumbs per response of the item, in any order."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["per_response"] = "per_response"
    judgements: list[OneResponse] = Field(min_length=1, max_length=64)


SubmittedJudgement = Annotated[
    Union[RankingJudgement, PairwiseJudgement, BinaryJudgement, RatingJudgement, AllBadJudgement,
          PerResponseJudgement],
    Field(discriminator="kind"),
]


def check_per_response(mode: str, j: PerResponseJudgement, k: int) -> str | None:
    """Why a per-response judgement does not fit a ``mode`` project with K responses, or None."""
    want = PER_RESPONSE_MODES[mode]
    if any(x.kind != want for x in j.judgements):
        return f"this project collects {want} judgements for every response"
    if sorted(x.response for x in j.judgements) != list(range(k)):
        return f"judge every response 0..{k - 1} exactly once"
    for x in j.judgements:
        if x.kind != "rating":
            continue
        if (x.scale_min, x.scale_max) != (LIKERT_MIN, LIKERT_MAX) or x.score != int(x.score):
            return f"ratings are whole numbers on the {LIKERT_MIN}-{LIKERT_MAX} scale"
    return None


def expand(stored: dict) -> list[dict]:
    """The schema judgements a stored judgement stands for (one, or one per response)."""
    if stored["kind"] == "per_response":
        return sorted(stored["judgements"], key=lambda x: x["response"])
    return [stored]
