"""Evaluating a reward model on held-out preference pairs.

Metrics (pure functions on per-pair numbers, so tests can work them out by hand):
- accuracy: share of pairs with r_chosen > r_rejected; a tie (equal rewards) counts as wrong
  (RewardBench's convention), with a percentile bootstrap 95% confidence interval;
- expected calibration error of p = sigmoid(r_chosen - r_rejected), read as the model's
  probability that the human-chosen answer is preferred. Each pair is scored as a binary
  prediction with confidence max(p, 1 - p), correct when p > 0.5; confidences fall into
  ``bins`` equal-width bins over [0.5, 1] and ECE = sum_b (n_b / N) |accuracy_b - confidence_b|;
- the length-bias check: accuracy on pairs where the chosen answer is the longer one (in
  characters) and on the rest.
"""

from __future__ import annotations

import math
import random
from typing import Sequence


def pair_accuracy(margins: Sequence[float]) -> float:
    """Share of margins r_c - r_r that are > 0 (ties count as wrong)."""
    if not margins:
        raise ValueError("no pairs to score")
    return sum(m > 0 for m in margins) / len(margins)


def bootstrap_ci(correct: Sequence[bool], n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of 0/1 outcomes (resampling pairs)."""
    rng = random.Random(seed)
    n = len(correct)
    values = [float(c) for c in correct]
    means = sorted(sum(values[rng.randrange(n)] for _ in range(n)) / n for _ in range(n_boot))
    lo = means[int(math.floor((1 - level) / 2 * n_boot))]
    hi = means[min(n_boot - 1, int(math.ceil((1 + level) / 2 * n_boot)) - 1)]
    return lo, hi


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def expected_calibration_error(margins: Sequence[float], bins: int = 10) -> float:
    """ECE of sigmoid(margin) as P(chosen preferred); rule in the module docstring."""
    totals = [0] * bins
    conf_sum = [0.0] * bins
    correct_sum = [0] * bins
    for m in margins:
        p = _sigmoid(m)
        conf = max(p, 1 - p)  # in [0.5, 1]
        b = min(bins - 1, int((conf - 0.5) / 0.5 * bins))
        totals[b] += 1
        conf_sum[b] += conf
        correct_sum[b] += int(p > 0.5)
    n = len(margins)
    return sum(abs(correct_sum[b] / totals[b] - conf_sum[b] / totals[b]) * totals[b] / n
               for b in range(bins) if totals[b])


def length_split(margins: Sequence[float], chosen_len: Sequence[int], rejected_len: Sequence[int]) -> dict:
    """Accuracy when the chosen answer is longer vs when it is not (equal length goes to 'not')."""
    longer = [m for m, c, r in zip(margins, chosen_len, rejected_len) if c > r]
    other = [m for m, c, r in zip(margins, chosen_len, rejected_len) if c <= r]
    return {
        "chosen_longer": {"n": len(longer), "accuracy": pair_accuracy(longer) if longer else None},
        "chosen_not_longer": {"n": len(other), "accuracy": pair_accuracy(other) if other else None},
    }


def summarize(margins: Sequence[float], chosen_len: Sequence[int], rejected_len: Sequence[int],
              disagreement: Sequence[float] | None = None, n_boot: int = 2000, seed: int = 0) -> dict:
    """All metrics as a JSON-ready dict."""
    correct = [m > 0 for m in margins]
    lo, hi = bootstrap_ci(correct, n_boot=n_boot, seed=seed)
    out = {
        "n_pairs": len(margins),
        "accuracy": pair_accuracy(margins),
        "accuracy_ci95": [lo, hi],
        "ties": sum(m == 0 for m in margins),
        "ece": expected_calibration_error(margins),
        "mean_margin": sum(margins) / len(margins),
        "length_bias": length_split(margins, chosen_len, rejected_len),
        "longer_answer_baseline": pair_accuracy([1.0 if c > r else -1.0 for c, r in zip(chosen_len, rejected_len)]),
    }
    if disagreement is not None:
        out["mean_disagreement"] = sum(disagreement) / len(disagreement)
    return out


def evaluate_model(model, tokenized, batch_size: int = 16, packed: bool = True, dtype: str = "fp32",
                   n_boot: int = 2000) -> dict:
    """Score pairs and summarise; with several heads, the mean head is the reward."""
    from rlhfkit.models.reward_model import ensemble_summary, score_pairs

    chosen, rejected = score_pairs(model, tokenized, batch_size, packed, dtype)
    s = ensemble_summary(chosen, rejected)
    summary = summarize(s["margin"].tolist(), [t.completion_chars[0] for t in tokenized],
                        [t.completion_chars[1] for t in tokenized],
                        s["disagreement"].tolist() if chosen.shape[1] > 1 else None, n_boot=n_boot)
    summary["n_heads"] = chosen.shape[1]
    return summary
