"""Measured label biases per annotator: how often the longer answer and the first-shown answer win.

Works on any labelled items (human exports or simulated pools). Every (chosen, rejected) pair an
annotation implies (``rlhfkit.schema.judgement_to_pairs``: a pairwise a/b choice gives one, a
ranking gives one per pair of tiers, ties none) is counted:

- length: among pairs whose two answers differ in length (characters), the share where the
  chosen answer is the longer one;
- position: among pairs of annotations that recorded ``shown_order``, the share where the
  chosen answer was shown before the rejected one.

An annotator without bias, on data where length and position carry no quality signal, sits near
0.5 on both. On real data the length share mixes bias with any real link between length and
quality, so compare annotators with each other and with a gold scorer, not with 0.5 alone.
Annotations without an ``annotator_id`` are grouped under "(unknown)"; "(all)" pools everyone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from rlhfkit.schema import PreferenceItem, judgement_to_pairs

ALL = "(all)"


@dataclass
class LabelBias:
    annotator: str
    source: str  # "human", "simulated", "model_judge", or "mixed"
    n_pairs: int
    longer_chosen: float | None  # share of length-differing pairs won by the longer answer
    n_length_pairs: int
    first_shown_chosen: float | None  # share of pairs won by the answer shown first
    n_position_pairs: int


def label_biases(items: Iterable[PreferenceItem]) -> dict[str, LabelBias]:
    """Per annotator (and ``"(all)"``) length and position preference shares; see the module docstring."""
    tally: dict[str, list] = {}  # name -> [sources, pairs, longer, length pairs, first, position pairs]
    for item in items:
        for ann in item.annotations:
            pos = {i: n for n, i in enumerate(ann.shown_order)} if ann.shown_order else None
            for name in (ann.annotator_id or "(unknown)", ALL):
                t = tally.setdefault(name, [set(), 0, 0, 0, 0, 0])
                t[0].add(ann.source)
                for c, r in judgement_to_pairs(ann.judgement):
                    t[1] += 1
                    lc, lr = len(item.responses[c].text), len(item.responses[r].text)
                    if lc != lr:
                        t[2] += lc > lr
                        t[3] += 1
                    if pos is not None:
                        t[4] += pos[c] < pos[r]
                        t[5] += 1
    return {name: LabelBias(name, next(iter(src)) if len(src) == 1 else "mixed", pairs,
                            longer / n_len if n_len else None, n_len, first / n_pos if n_pos else None, n_pos)
            for name, (src, pairs, longer, n_len, first, n_pos) in tally.items()}
