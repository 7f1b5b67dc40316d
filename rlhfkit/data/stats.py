"""Descriptive statistics of a preference data set: counts and the length bias of the labels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlhfkit.schema import PreferencePair


@dataclass
class LengthSummary:
    mean: float
    p10: float
    median: float
    p90: float

    @classmethod
    def of(cls, lengths: list[int]) -> "LengthSummary":
        a = np.asarray(lengths, dtype=float) if lengths else np.zeros(1)
        return cls(float(a.mean()), *(float(np.percentile(a, q)) for q in (10, 50, 90)))


@dataclass
class PairStats:
    pairs: int
    chosen_chars: LengthSummary
    rejected_chars: LengthSummary
    chosen_words: LengthSummary
    rejected_words: LengthSummary
    # "Longer" is by characters, the convention of the length-bias literature and RewardBench.
    longer_chosen: int
    shorter_chosen: int
    equal_length: int

    @property
    def longer_chosen_share(self) -> float:
        """Share of pairs whose chosen answer is the longer one (equal-length pairs count as not)."""
        return self.longer_chosen / self.pairs if self.pairs else 0.0


def _words(text: str) -> int:
    return len(text.split())


def pair_stats(pairs: list[PreferencePair]) -> PairStats:
    c = [len(p.chosen.strip()) for p in pairs]
    r = [len(p.rejected.strip()) for p in pairs]
    return PairStats(
        pairs=len(pairs),
        chosen_chars=LengthSummary.of(c),
        rejected_chars=LengthSummary.of(r),
        chosen_words=LengthSummary.of([_words(p.chosen) for p in pairs]),
        rejected_words=LengthSummary.of([_words(p.rejected) for p in pairs]),
        longer_chosen=sum(a > b for a, b in zip(c, r)),
        shorter_chosen=sum(a < b for a, b in zip(c, r)),
        equal_length=sum(a == b for a, b in zip(c, r)),
    )
