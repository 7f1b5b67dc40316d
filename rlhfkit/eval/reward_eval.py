"""Evaluating a reward model on held-out preference pairs.

Metrics (pure functions on per-pair numbers, so tests can work them out by hand):
- accuracy: share of pairs with r_chosen > r_rejected; a tie (equal rewards) counts as wrong
  (RewardBench's convention), with a percentile bootstrap 95% confidence interval;
- expected calibration error of p = sigmoid(r_chosen - r_rejected), read as the model's
  probability that the human-chosen answer is preferred. Each pair is scored as a binary
  prediction with confidence max(p, 1 - p), correct when p > 0.5; confidences fall into
  ``bins`` equal-width bins over [0.5, 1] and ECE = sum_b (n_b / N) |accuracy_b - confidence_b|;
- the length-bias check: accuracy on pairs where the chosen answer is the longer one (in
  characters) and on the rest;
- for an ensemble (several heads or members; ``ensemble_report``): each pair's member margins
  m_1..m_N give the ensemble margin mean(m) and the disagreement std(m) (population std, as
  ``ensemble_summary``). Calibration: ECE of p = sigmoid(mean margin), the ensemble's
  P(chosen > rejected), in ``ECE_BINS`` = 10 bins as above, and the same for the mean of the
  members' probabilities, mean(sigmoid(m)). Whether disagreement predicts error: pairs sorted by
  disagreement (ties by input order), accuracy of the ensemble margin on the least-disputed
  quarter (the first n // 4) and on the most-disputed quarter (the last n // 4); a useful
  ensemble is less accurate where it disagrees. The std grows with the size of the margin
  (members that agree on the order but differ in scale), so the same split is also reported by
  the relative disagreement std(m) / |mean(m)| (0 when std is 0, infinite when only the mean is).
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


ECE_BINS = 10


def expected_calibration_error(margins: Sequence[float], bins: int = ECE_BINS) -> float:
    """ECE of sigmoid(margin) as P(chosen preferred); rule in the module docstring."""
    return probability_calibration_error([_sigmoid(m) for m in margins], bins)


def probability_calibration_error(probabilities: Sequence[float], bins: int = ECE_BINS) -> float:
    """ECE of probabilities p that the chosen answer is preferred (rule in the module docstring)."""
    totals = [0] * bins
    conf_sum = [0.0] * bins
    correct_sum = [0] * bins
    for p in probabilities:
        conf = max(p, 1 - p)  # in [0.5, 1]
        b = min(bins - 1, int((conf - 0.5) / 0.5 * bins))
        totals[b] += 1
        conf_sum[b] += conf
        correct_sum[b] += int(p > 0.5)
    n = len(probabilities)
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


def disputed_quartiles(margins: Sequence[float], disagreement: Sequence[float]) -> dict:
    """Accuracy on the least- and most-disputed quarter of the pairs (rule in the module
    docstring); each with its size and mean disagreement. None when there are under 4 pairs."""
    if len(margins) != len(disagreement):
        raise ValueError(f"{len(margins)} margins but {len(disagreement)} disagreements")
    q = len(margins) // 4
    if q == 0:
        return {"least_disputed": None, "most_disputed": None}
    order = sorted(range(len(margins)), key=lambda i: (disagreement[i], i))

    def group(idx: list[int]) -> dict:
        return {"n": len(idx), "accuracy": pair_accuracy([margins[i] for i in idx]),
                "mean_disagreement": sum(disagreement[i] for i in idx) / len(idx)}

    return {"least_disputed": group(order[:q]), "most_disputed": group(order[-q:])}


def ensemble_report(member_margins: Sequence[Sequence[float]], bins: int = ECE_BINS) -> dict:
    """Calibration and disagreement of an ensemble from each pair's member margins (n lists of N
    numbers, N >= 2): the ensemble ECE (from the mean margin and from the mean member
    probability) in ``bins`` bins, and ``disputed_quartiles``."""
    if not member_margins or min(len(m) for m in member_margins) < 2:
        raise ValueError("an ensemble report needs every pair scored by at least 2 members")
    mean = [sum(m) / len(m) for m in member_margins]
    spread = [math.sqrt(sum((x - mu) ** 2 for x in m) / len(m)) for m, mu in zip(member_margins, mean)]
    mean_probability = [sum(_sigmoid(x) for x in m) / len(m) for m in member_margins]
    quartiles = disputed_quartiles(mean, spread)
    least, most = quartiles["least_disputed"], quartiles["most_disputed"]
    relative = disputed_quartiles(mean, [0.0 if sd == 0 else sd / abs(mu) if mu else math.inf
                                         for sd, mu in zip(spread, mean)])
    if relative["least_disputed"]:
        relative["accuracy_gap"] = relative["least_disputed"]["accuracy"] - relative["most_disputed"]["accuracy"]
    return {
        "members": len(member_margins[0]),
        "ece_bins": bins,
        "ece": expected_calibration_error(mean, bins),
        "ece_mean_probability": probability_calibration_error(mean_probability, bins),
        "member_accuracy": [pair_accuracy([m[h] for m in member_margins]) for h in range(len(member_margins[0]))],
        **quartiles,
        "accuracy_gap": least["accuracy"] - most["accuracy"] if least else None,
        "by_relative_disagreement": relative,
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
    from rlhfkit.models.reward_model import score_pairs

    chosen, rejected = score_pairs(model, tokenized, batch_size, packed, dtype)
    return summarize_scores(chosen, rejected, tokenized, n_boot)


def summarize_scores(chosen, rejected, tokenized, n_boot: int = 2000) -> dict:
    """``summarize`` of (n, N) member rewards (N heads or members; the mean is the reward),
    with ``ensemble_report`` under "ensemble" when N >= 2."""
    from rlhfkit.models.reward_model import ensemble_summary

    s = ensemble_summary(chosen, rejected)
    summary = summarize(s["margin"].tolist(), [t.completion_chars[0] for t in tokenized],
                        [t.completion_chars[1] for t in tokenized],
                        s["disagreement"].tolist() if chosen.shape[1] > 1 else None, n_boot=n_boot)
    summary["n_heads"] = chosen.shape[1]
    if chosen.shape[1] > 1:
        summary["ensemble"] = ensemble_report((chosen - rejected).tolist())
    return summary


def evaluate_members(members: list, pairs: list, max_length: int, batch_size: int = 16, dtype: str = "fp32",
                     n_boot: int = 2000) -> dict:
    """Separately trained reward models (``RewardEnsemble``'s members) scored as one ensemble:
    each member reads the pairs with its own tokenizer; their heads are stacked."""
    import torch

    from rlhfkit.models.reward_model import score_pairs
    from rlhfkit.packing import tokenize_reward_pairs

    chosen, rejected, tokenized = [], [], None
    for member in members:
        tokenized = tokenize_reward_pairs(member.tokenizer, pairs, max_length)
        c, r = score_pairs(member, tokenized, batch_size, True, dtype)  # (n, H) each
        chosen.append(c)
        rejected.append(r)
    summary = summarize_scores(torch.cat(chosen, dim=1), torch.cat(rejected, dim=1), tokenized, n_boot)
    summary["n_members"] = len(members)
    return summary
