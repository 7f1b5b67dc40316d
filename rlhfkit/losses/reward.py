"""Reward-model losses: pure functions ``(tensors, hyperparameters) -> (loss, metrics)``.

Each function returns a scalar loss (a weighted mean over judgements) and a dict of detached
scalar metrics. Rewards are real numbers per (prompt, response); the losses only see them.

- ``bradley_terry_loss``: pairwise preferences (Bradley & Terry 1952; Ouyang et al. 2022,
  eq. 1; Touvron et al. 2023 for the margin), with label smoothing for noisy labels and an
  optional "centre the rewards" penalty (Eisenstein et al. 2023), both as in TRL's
  ``RewardTrainer``.
- ``plackett_luce_loss``: K-wise rankings with tiers (Plackett 1975; Luce 1959; Zhu et al. 2023).
- ``rating_regression_loss``: scalar ratings on a stated scale, squared error after mapping the
  scale linearly onto [-1, 1].

Weights: every loss takes ``weights`` (one per judgement, >= 0) so annotator reliability can
scale a label; the loss is ``sum(w_i * l_i) / sum(w_i)``, so weights of all ones give the plain
mean and multiplying every weight by a constant changes nothing.

Only torch and the standard library are imported here.
"""

from __future__ import annotations

import torch

from rlhfkit.losses.weighting import weighted_mean
import torch.nn.functional as F

Metrics = dict[str, float]


def bradley_terry_loss(
    chosen_rewards: torch.Tensor,
    rejected_rewards: torch.Tensor,
    margin: torch.Tensor | float | None = None,
    label_smoothing: float = 0.0,
    weights: torch.Tensor | None = None,
    center_rewards_coef: float = 0.0,
) -> tuple[torch.Tensor, Metrics]:
    """Bradley-Terry pairwise loss.

    With d = r_c - r_r - m (m the optional margin, per pair or a scalar) and smoothing e:

        l_i = -(1 - e) * log sigmoid(d_i) - e * log sigmoid(-d_i)
        loss = sum_i w_i l_i / sum_i w_i  +  c * mean_i (r_c,i + r_r,i)^2

    The second term (coefficient ``center_rewards_coef`` = c) keeps rewards centred on zero
    (TRL's ``center_rewards_coefficient``); it is unweighted, as in TRL.
    Label smoothing e is "the label is flipped with probability e" (conservative targets, as
    in cDPO, Mitchell 2023); e = 0.5 makes the loss blind to the label.

    Worked example: r_c = 1, r_r = 0, no margin, e = 0: l = -log sigmoid(1) = log(1 + e^-1)
    = 0.313262; with e = 0.1: 0.9 * 0.313262 + 0.1 * 1.313262 = 0.413262.

    Shapes: chosen_rewards, rejected_rewards (B,); margin () or (B,); weights (B,).
    """
    if chosen_rewards.shape != rejected_rewards.shape or chosen_rewards.dim() != 1:
        raise ValueError("chosen_rewards and rejected_rewards must both have shape (B,)")
    if not 0.0 <= label_smoothing <= 0.5:
        raise ValueError(f"label_smoothing must lie in [0, 0.5], got {label_smoothing}")
    delta = chosen_rewards - rejected_rewards  # (B,)
    logits = delta if margin is None else delta - margin
    per_pair = -(1.0 - label_smoothing) * F.logsigmoid(logits) - label_smoothing * F.logsigmoid(-logits)
    loss = weighted_mean(per_pair, weights)
    if center_rewards_coef:
        loss = loss + center_rewards_coef * ((chosen_rewards + rejected_rewards) ** 2).mean()
    metrics = {
        "loss": loss.item(),
        # ties count as wrong (RewardBench's convention)
        "accuracy": (delta > 0).float().mean().item(),
        "margin": delta.mean().item(),
        "chosen_reward": chosen_rewards.mean().item(),
        "rejected_reward": rejected_rewards.mean().item(),
    }
    return loss, metrics


def plackett_luce_loss(
    rewards: torch.Tensor,
    tiers: torch.Tensor,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, Metrics]:
    """Plackett-Luce negative log-likelihood of a tiered ranking of K responses.

    ``tiers[b, k]`` is the tier of response k in ranking b: 0 is best, larger is worse, equal
    numbers are ties, and -1 marks a missing slot (rankings of different K share one tensor).

    Without ties this is the exact Plackett-Luce likelihood of the order sigma:

        -log P = -sum_i [ r_sigma(i) - log sum_{j >= i} exp(r_sigma(j)) ]

    Ties rule (documented choice): tied responses are *not compared with each other*, matching
    ``rlhfkit.schema.ranking_to_pairs`` where a tie yields no pair. Each response k contributes

        -[ r_k - log( exp(r_k) + sum_{j : tier_j > tier_k} exp(r_j) ) ]

    i.e. it must beat every strictly worse response, and its tie-mates are left out of its
    denominator. Responses in the worst tier contribute 0. With no ties this is the formula
    above; with K = 2 it is Bradley-Terry, -log sigmoid(r_c - r_r); a ranking that is one tier
    contributes 0 (it says nothing).

    Worked example, K = 3, tiers [0, 1, 2], rewards [2, 1, 0]:
        -(2 - log(e^2 + e^1 + e^0)) - (1 - log(e^1 + e^0)) = 0.407606 + 0.313262 = 0.720868.

    Shapes: rewards (B, K) float, tiers (B, K) long, weights (B,). Returns the weighted mean
    over rankings of the per-ranking sum of terms.
    """
    if rewards.shape != tiers.shape or rewards.dim() != 2:
        raise ValueError("rewards and tiers must both have shape (B, K)")
    present = tiers >= 0  # (B, K)
    # worse[b, k, j]: response j is present and in a strictly worse tier than response k
    worse = present.unsqueeze(1) & (tiers.unsqueeze(1) > tiers.unsqueeze(2))  # (B, K, K)
    neg_inf = torch.finfo(rewards.dtype).min
    others = rewards.unsqueeze(1).expand_as(worse).masked_fill(~worse, neg_inf)  # (B, K, K)
    # log(exp(r_k) + sum_j worse exp(r_j)) for each k
    log_denominator = torch.logsumexp(torch.cat([rewards.unsqueeze(2), others], dim=2), dim=2)  # (B, K)
    terms = (log_denominator - rewards) * present  # (B, K); 0 for missing slots
    # naive loop it equals:  for k: if present[k]: loss += log(exp r_k + sum_{tier_j>tier_k} exp r_j) - r_k
    per_ranking = terms.sum(dim=1)  # (B,)
    loss = weighted_mean(per_ranking, weights)
    comparable = worse.sum().clamp(min=1)
    correct = (worse & (rewards.unsqueeze(2) > rewards.unsqueeze(1))).sum()
    metrics = {"loss": loss.item(), "pair_accuracy": (correct / comparable).item()}
    return loss, metrics


def rating_regression_loss(
    rewards: torch.Tensor,
    ratings: torch.Tensor,
    scale_min: float | torch.Tensor = 1.0,
    scale_max: float | torch.Tensor = 7.0,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, Metrics]:
    """Squared-error regression of rewards on scalar ratings (e.g. a 1-7 Likert scale).

    The rating is mapped linearly onto [-1, 1], t = 2 (s - min) / (max - min) - 1, so ratings
    on different scales share one target range and sit near where Bradley-Terry rewards live:

        loss = sum_i w_i (r_i - t_i)^2 / sum_i w_i

    Worked example: rating 5 on 1..7 -> t = 2 * 4 / 6 - 1 = 1/3; reward 0 gives loss 1/9.

    Shapes: rewards (B,), ratings (B,), scale_min/scale_max scalars or (B,), weights (B,).
    """
    if rewards.shape != ratings.shape or rewards.dim() != 1:
        raise ValueError("rewards and ratings must both have shape (B,)")
    span = torch.as_tensor(scale_max, dtype=rewards.dtype) - torch.as_tensor(scale_min, dtype=rewards.dtype)
    if (span <= 0).any():
        raise ValueError("scale_max must be greater than scale_min")
    targets = 2.0 * (ratings.to(rewards.dtype) - scale_min) / span - 1.0  # (B,)
    per_item = (rewards - targets) ** 2
    loss = weighted_mean(per_item, weights)
    return loss, {"loss": loss.item(), "mae": (rewards - targets).abs().mean().item()}
