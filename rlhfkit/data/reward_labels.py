"""Which labels of an export train a reward model, for each reward loss.

An export may mix rankings (K responses in tiers), pairwise choices and scalar ratings in one
file. The rule (``rlhfkit reward train --loss``; docs/reward-models.md):

- ``bt`` (Bradley-Terry): every (chosen, rejected) pair that rankings and pairwise choices imply
  (``rlhfkit.schema.item_to_pairs``: a ranking of K in tiers gives one pair per two responses in
  different tiers; ties give none). Ratings, thumbs and "all bad" are not used.
- ``pl`` (Plackett-Luce): each ranking annotation is one example with its tiers kept; a pairwise
  choice of "a" or "b" is a ranking of two, ``[[chosen], [rejected]]``. A ranking that is a
  single tier (all tied) and pairwise "tie" / "both_bad" say nothing about order and are left
  out. Ratings, thumbs and "all bad" are not used.
- ``regression``: each rating annotation is one example (the response, its score and the
  annotation's scale). Rankings and pairs are not used: they order responses but give no value
  on a scale, and ratings are not turned into pairs either, since two annotators' scales differ.

Each example keeps its annotation's ``weight``. ``load_reward_examples`` counts every kind and
refuses, naming the file and what it holds, a file that has no label the chosen loss can use.
Torch-free (data layer).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from rlhfkit.schema import PreferenceItem, PreferencePair, item_to_pairs

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class RankedResponses:
    """A prompt and K responses with a tiered ranking: ``tiers`` best first, indices into
    ``responses``; responses in one tier are tied."""

    prompt: Any  # str or chat messages, as in PreferenceItem
    responses: tuple[str, ...]
    tiers: tuple[tuple[int, ...], ...]
    weight: float = 1.0
    item_id: str | None = None

    @property
    def tier_of(self) -> list[int]:
        """Tier number (0 = best) of each response, in response order."""
        out = [0] * len(self.responses)
        for t, tier in enumerate(self.tiers):
            for i in tier:
                out[i] = t
        return out


@dataclass(frozen=True)
class RatedResponse:
    """One response with a scalar rating on the scale [scale_min, scale_max]."""

    prompt: Any
    response: str
    score: float
    scale_min: float = 1.0
    scale_max: float = 7.0
    weight: float = 1.0
    item_id: str | None = None


def item_to_rankings(item: PreferenceItem) -> list[RankedResponses]:
    """The item's rankings (tiers kept) and pairwise choices (as rankings of two), by the rule
    in the module docstring."""
    texts = [r.text for r in item.responses]
    out = []
    for ann in item.annotations:
        j = ann.judgement
        if j.kind == "ranking" and len(j.tiers) >= 2:
            out.append(RankedResponses(item.prompt, tuple(texts), tuple(tuple(t) for t in j.tiers), ann.weight, item.id))
        elif j.kind == "pairwise" and j.choice in ("a", "b"):
            c, r = (j.a, j.b) if j.choice == "a" else (j.b, j.a)
            out.append(RankedResponses(item.prompt, (texts[c], texts[r]), ((0,), (1,)), ann.weight, item.id))
    return out


def item_to_ratings(item: PreferenceItem) -> list[RatedResponse]:
    """The item's rating annotations, one example each."""
    return [RatedResponse(item.prompt, item.responses[ann.judgement.response].text, ann.judgement.score,
                          ann.judgement.scale_min, ann.judgement.scale_max, ann.weight, item.id)
            for ann in item.annotations if ann.judgement.kind == "rating"]


def pairs_as_rankings(pairs: Iterable[PreferencePair]) -> list[RankedResponses]:
    """Pairs as rankings of two (``[[chosen], [rejected]]``), so pair data trains with ``pl``."""
    return [RankedResponses(p.prompt, (p.chosen, p.rejected), ((0,), (1,)), p.weight, p.item_id) for p in pairs]


def label_counts(items: Iterable[PreferenceItem]) -> dict[str, int]:
    """Annotations per judgement kind (ranking, pairwise, rating, binary, all_bad)."""
    counts: dict[str, int] = {}
    for item in items:
        for ann in item.annotations:
            counts[ann.judgement.kind] = counts.get(ann.judgement.kind, 0) + 1
    return counts


EXTRACT = {
    "bt": item_to_pairs,
    "pl": item_to_rankings,
    "regression": item_to_ratings,
}
USED_KINDS = {"bt": ("ranking", "pairwise"), "pl": ("ranking", "pairwise"), "regression": ("rating",)}


def reward_examples(items: Iterable[PreferenceItem], loss: str, source: str = "the data") -> list:
    """Training examples for ``loss`` from ``items`` (pairs, rankings or ratings); raises a
    ValueError naming ``source`` and what it holds when nothing is usable."""
    if loss not in EXTRACT:
        raise ValueError(f"unknown reward loss {loss!r}; choose {', '.join(EXTRACT)}")
    items = list(items)
    examples = [ex for item in items for ex in EXTRACT[loss](item)]
    counts = label_counts(items)
    held = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "no annotations"
    if not examples:
        needs = {"bt": "rankings (2+ tiers) or pairwise choices", "pl": "rankings (2+ tiers) or pairwise choices",
                 "regression": "rating annotations"}[loss]
        hint = " (train ratings with --loss regression)" if loss != "regression" and counts.get("rating") else (
            " (train rankings and pairs with --loss bt or pl)" if loss == "regression" and
            (counts.get("ranking") or counts.get("pairwise")) else "")
        raise ValueError(f"{source}: --loss {loss} needs {needs}, but the file holds {held}{hint}")
    unused = {k: n for k, n in counts.items() if k not in USED_KINDS[loss]}
    if unused:
        log.warning("%s: --loss %s uses %s; left out: %s", source, loss, " and ".join(USED_KINDS[loss]),
                    ", ".join(f"{n} {k}" for k, n in sorted(unused.items())))
    return examples


def load_reward_examples(path: str | Path, loss: str, fmt: str = "auto", strict: bool = False) -> list:
    """``reward_examples`` of a file in any supported format."""
    from rlhfkit.data.io import read_items

    return reward_examples(read_items(path, fmt, strict=strict), loss, str(path))
