"""The data contract of rlhfkit: prompts, candidate responses, and human judgements of them.

One ``PreferenceItem`` is a prompt with K candidate responses and any number of annotations.
Every stage reads and writes this shape: ``rlhfkit generate`` produces items without
annotations, the feedback app adds annotations, trainers read items (or the pairs derived
from them). Storage (JSONL, SQL, HF datasets) lives elsewhere; this module only says what is
valid.

Ranking -> pairs rule (deterministic, see ``ranking_to_pairs``):
  a ranking is a list of tiers, best first; each tier is a list of response indices that are
  tied. Every response in an earlier tier is preferred to every response in a later tier,
  which gives one (chosen, rejected) pair per such combination, emitted in tier order and,
  within tiers, in ascending index order. Responses in the same tier (ties) produce no pair.
  A pairwise choice of "a" or "b" gives one pair; "tie" and "both_bad" give none.
  Binary thumbs and scalar ratings judge a single response and give no pairs (they feed
  KTO-style and regression losses instead). An "all_bad" judgement gives no pairs.

Language feedback (Scheurer et al. 2023, "Training Language Models with Language Feedback at
Scale") rides on an annotation beside its judgement: ``response_critiques`` are critiques of
single responses, ``edit`` is the annotator's rewrite of one response into what it should have
been. Neither gives a ranking pair; ``rlhfkit.data.language_feedback`` turns them into SFT
examples, edited > original pairs and (prompt, response, critique) triples.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SCHEMA_VERSION = 1

Role = Literal["system", "user", "assistant"]
Source = Literal["human", "simulated", "model_judge"]


def new_id() -> str:
    return uuid.uuid4().hex


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class _Strict(BaseModel):
    # Unknown keys are almost always typos of a real field; refuse them rather than drop data.
    model_config = ConfigDict(extra="forbid")


class Message(_Strict):
    role: Role
    content: str


class Provenance(_Strict):
    """Where a response came from: enough to regenerate it or to group results by policy."""

    model: str = Field(description="model name or path that produced the response")
    model_version: str | None = Field(default=None, description="revision, checkpoint step or hash")
    sampling: dict[str, Any] = Field(
        default_factory=dict, description="temperature, top_p, max_new_tokens, seed, ..."
    )
    created_at: datetime | None = None


class Response(_Strict):
    id: str = Field(default_factory=new_id)
    text: str
    provenance: Provenance | None = None

    @field_validator("text")
    @classmethod
    def _not_empty(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("response text is empty")
        return text


class RankingJudgement(_Strict):
    """A full ranking: tiers of response indices, best tier first; a tier of 2+ is a tie."""

    kind: Literal["ranking"] = "ranking"
    tiers: list[list[int]]

    @field_validator("tiers")
    @classmethod
    def _tiers_well_formed(cls, tiers: list[list[int]]) -> list[list[int]]:
        if not tiers or any(len(t) == 0 for t in tiers):
            raise ValueError("a ranking needs at least one tier and no empty tiers")
        flat = [i for tier in tiers for i in tier]
        if len(flat) != len(set(flat)):
            raise ValueError("a response index appears twice in the ranking")
        return tiers


class PairwiseJudgement(_Strict):
    kind: Literal["pairwise"] = "pairwise"
    a: int
    b: int
    choice: Literal["a", "b", "tie", "both_bad"]

    @model_validator(mode="after")
    def _distinct(self) -> "PairwiseJudgement":
        if self.a == self.b:
            raise ValueError("a pairwise judgement compares two different responses")
        return self


class BinaryJudgement(_Strict):
    """Thumbs up (True) or down (False) on one response."""

    kind: Literal["binary"] = "binary"
    response: int
    thumbs_up: bool


class RatingJudgement(_Strict):
    """A scalar rating of one response on a stated scale."""

    kind: Literal["rating"] = "rating"
    response: int
    score: float
    scale_min: float = 1.0
    scale_max: float = 7.0

    @model_validator(mode="after")
    def _in_scale(self) -> "RatingJudgement":
        if not self.scale_min <= self.score <= self.scale_max:
            raise ValueError(f"score {self.score} is outside [{self.scale_min}, {self.scale_max}]")
        return self


class AllBadJudgement(_Strict):
    """Every candidate is unacceptable; nothing to prefer."""

    kind: Literal["all_bad"] = "all_bad"


Judgement = Annotated[
    Union[RankingJudgement, PairwiseJudgement, BinaryJudgement, RatingJudgement, AllBadJudgement],
    Field(discriminator="kind"),
]


class ResponseCritique(_Strict):
    """A written critique of one response (index into the item's responses)."""

    response: int
    text: str

    @field_validator("text")
    @classmethod
    def _critique_not_empty(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("critique text is empty")
        return text


class ResponseEdit(_Strict):
    """The annotator's rewrite of one response (index) into what it should have been."""

    response: int
    text: str

    @field_validator("text")
    @classmethod
    def _edit_not_empty(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("edited text is empty")
        return text


class Annotation(_Strict):
    id: str = Field(default_factory=new_id, description="client-generated id; makes retries idempotent")
    judgement: Judgement
    critique: str | None = None
    annotator_id: str | None = None
    source: Source = "human"
    time_spent_s: float | None = Field(default=None, ge=0)
    shown_order: list[int] | None = Field(
        default=None, description="response indices in the order they were displayed"
    )
    weight: float = Field(default=1.0, ge=0, description="reliability weight for training")
    created_at: datetime | None = None
    response_critiques: list[ResponseCritique] | None = Field(
        default=None, description="critiques of single responses (language feedback)")
    edit: ResponseEdit | None = Field(default=None, description="a response rewritten by the annotator")


class PreferenceItem(_Strict):
    """A prompt, K candidate responses, and the judgements made on them."""

    id: str = Field(default_factory=new_id)
    prompt: str | list[Message]
    responses: list[Response]
    annotations: list[Annotation] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    @model_validator(mode="after")
    def _consistent(self) -> "PreferenceItem":
        unpaired_only = bool(self.annotations) and all(
            a.judgement.kind in ("binary", "rating") for a in self.annotations
        )
        if len(self.responses) < 2 and not unpaired_only:
            raise ValueError(
                f"an item needs at least 2 responses (got {len(self.responses)}); "
                "only thumbs-up/down or rating feedback may judge a single response"
            )
        if isinstance(self.prompt, str) and not self.prompt.strip():
            raise ValueError("prompt is empty")
        if isinstance(self.prompt, list) and not self.prompt:
            raise ValueError("prompt has no messages")
        k = len(self.responses)
        for n, ann in enumerate(self.annotations):
            for idx in _indices(ann.judgement):
                if not 0 <= idx < k:
                    raise ValueError(f"annotations[{n}] refers to response {idx}, but there are {k}")
            if ann.judgement.kind == "ranking":
                ranked = sorted(i for t in ann.judgement.tiers for i in t)
                if ranked != list(range(k)):
                    raise ValueError(f"annotations[{n}]: a ranking must place every response 0..{k - 1} once")
            for idx in language_feedback_indices(ann):
                if not 0 <= idx < k:
                    raise ValueError(f"annotations[{n}]: critique or edit of response {idx}, but there are {k}")
            if ann.shown_order is not None and sorted(ann.shown_order) != list(range(k)):
                raise ValueError(f"annotations[{n}].shown_order must be a permutation of 0..{k - 1}")
        return self

    @property
    def prompt_text(self) -> str:
        """The prompt as plain text (chat messages joined as 'role: content' lines)."""
        if isinstance(self.prompt, str):
            return self.prompt
        return "\n".join(f"{m.role}: {m.content}" for m in self.prompt)


def _indices(j: Any) -> list[int]:
    if j.kind == "ranking":
        return [i for t in j.tiers for i in t]
    if j.kind == "pairwise":
        return [j.a, j.b]
    if j.kind in ("binary", "rating"):
        return [j.response]
    return []


def language_feedback_indices(ann: Annotation) -> list[int]:
    """Response indices an annotation's critiques and edit refer to."""
    out = [c.response for c in ann.response_critiques or []]
    return out + ([ann.edit.response] if ann.edit is not None else [])


def ranking_to_pairs(tiers: list[list[int]]) -> list[tuple[int, int]]:
    """(chosen, rejected) index pairs implied by a tiered ranking; ties give no pair.

    >>> ranking_to_pairs([[2], [0, 1], [3]])
    [(2, 0), (2, 1), (2, 3), (0, 3), (1, 3)]
    """
    pairs = []
    for hi, better in enumerate(tiers):
        for worse in tiers[hi + 1 :]:
            for c in sorted(better):
                for r in sorted(worse):
                    pairs.append((c, r))
    return pairs


def judgement_to_pairs(j: Any) -> list[tuple[int, int]]:
    """(chosen, rejected) pairs from any judgement, by the rule in the module docstring."""
    if j.kind == "ranking":
        return ranking_to_pairs(j.tiers)
    if j.kind == "pairwise" and j.choice in ("a", "b"):
        return [(j.a, j.b)] if j.choice == "a" else [(j.b, j.a)]
    return []


class PreferencePair(_Strict):
    """A flattened (prompt, chosen, rejected) example, as DPO and reward training consume it."""

    prompt: str | list[Message]
    chosen: str
    rejected: str
    weight: float = 1.0
    item_id: str | None = None
    annotator_id: str | None = None


def item_to_pairs(item: PreferenceItem) -> list[PreferencePair]:
    """Every (chosen, rejected) pair the item's annotations imply, weighted by annotation."""
    out = []
    for ann in item.annotations:
        for c, r in judgement_to_pairs(ann.judgement):
            out.append(
                PreferencePair(
                    prompt=item.prompt,
                    chosen=item.responses[c].text,
                    rejected=item.responses[r].text,
                    weight=ann.weight,
                    item_id=item.id,
                    annotator_id=ann.annotator_id,
                )
            )
    return out
