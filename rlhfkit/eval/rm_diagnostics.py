"""Reward-model diagnostics for length bias, from per-pair scores and lengths.

Inputs are four equal-length lists over held-out pairs: the reward of the chosen and of the
rejected answer, and the lengths of both (characters or tokens; the caller decides). A pair is
scored correct when r_chosen > r_rejected; a tie counts as wrong (RewardBench's convention, as in
``rlhfkit.eval.reward_eval``).

- ``accuracy_by_length``: accuracy on pairs where the chosen answer is longer, where the rejected
  one is longer, where both have the same length, and overall. A reward model that learned
  "longer is better" is right on the first group and wrong on the second.
- ``longer_rejected_accuracy``: the second group alone, the pairs a length heuristic gets wrong.
- ``score_length_correlation``: Pearson and Spearman (average ranks for ties) correlation of
  reward with length over all 2n answers pooled, and of the reward margin r_c - r_r with the
  length difference len_c - len_r over the n pairs.
Every figure comes with its count; a group with no pairs has accuracy None, a correlation of a
constant list is None. Pure numpy functions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np


@dataclass
class GroupAccuracy:
    accuracy: float | None
    correct: int
    n: int


def _arrays(*lists: Sequence[float]) -> list[np.ndarray]:
    arrays = [np.asarray(x, dtype=float) for x in lists]
    if len({a.shape for a in arrays}) != 1 or arrays[0].ndim != 1:
        raise ValueError(f"scores and lengths must be equal-length lists, got shapes {[a.shape for a in arrays]}")
    return arrays


def _group(correct: np.ndarray, mask: np.ndarray) -> GroupAccuracy:
    n, k = int(mask.sum()), int(correct[mask].sum())
    return GroupAccuracy(k / n if n else None, k, n)


def accuracy_by_length(chosen_scores: Sequence[float], rejected_scores: Sequence[float],
                       chosen_lengths: Sequence[float], rejected_lengths: Sequence[float]) -> dict[str, GroupAccuracy]:
    """Accuracy overall and split by which answer of the pair is longer."""
    rc, rr, lc, lr = _arrays(chosen_scores, rejected_scores, chosen_lengths, rejected_lengths)
    correct = rc > rr
    return {"all": _group(correct, np.ones_like(correct)), "chosen_longer": _group(correct, lc > lr),
            "rejected_longer": _group(correct, lr > lc), "same_length": _group(correct, lc == lr)}


def longer_rejected_accuracy(chosen_scores: Sequence[float], rejected_scores: Sequence[float],
                             chosen_lengths: Sequence[float], rejected_lengths: Sequence[float]) -> GroupAccuracy:
    """Accuracy on the pairs where the rejected answer is the longer one."""
    return accuracy_by_length(chosen_scores, rejected_scores, chosen_lengths, rejected_lengths)["rejected_longer"]


def _ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the average of their ranks."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(x.size)
    ranks[order] = np.arange(1, x.size + 1)
    values, inverse = np.unique(x, return_inverse=True)
    sums = np.bincount(inverse, weights=ranks)
    counts = np.bincount(inverse)
    return (sums / counts)[inverse]


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    a, b = _arrays(x, y)
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if a.size >= 2 and denom > 0 else None


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    a, b = _arrays(x, y)
    return pearson(_ranks(a), _ranks(b)) if a.size else None


def score_length_correlation(chosen_scores: Sequence[float], rejected_scores: Sequence[float],
                             chosen_lengths: Sequence[float], rejected_lengths: Sequence[float]) -> dict[str, Any]:
    """Reward-length correlations: pooled over answers, and margin vs length difference over pairs."""
    rc, rr, lc, lr = _arrays(chosen_scores, rejected_scores, chosen_lengths, rejected_lengths)
    scores, lengths = np.concatenate([rc, rr]), np.concatenate([lc, lr])
    return {"pooled": {"pearson": pearson(scores, lengths), "spearman": spearman(scores, lengths), "n": int(scores.size)},
            "margin": {"pearson": pearson(rc - rr, lc - lr), "spearman": spearman(rc - rr, lc - lr), "n": int(rc.size)}}


def rm_diagnostics(chosen_scores: Sequence[float], rejected_scores: Sequence[float],
                   chosen_lengths: Sequence[float], rejected_lengths: Sequence[float]) -> dict[str, Any]:
    """All of the above as one JSON-safe dict (for the report)."""
    args = (chosen_scores, rejected_scores, chosen_lengths, rejected_lengths)
    return {"accuracy_by_length": {k: asdict(v) for k, v in accuracy_by_length(*args).items()},
            "longer_rejected": asdict(longer_rejected_accuracy(*args)),
            "score_length_correlation": score_length_correlation(*args)}
