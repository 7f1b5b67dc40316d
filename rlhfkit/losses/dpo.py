"""Offline preference losses of the DPO family: one pure function per variant.

Every function takes per-sequence log-probabilities (summed over the completion tokens, shape
``(B,)``) and returns ``(loss, metrics)``: ``loss`` is the mean over the batch (a scalar that
carries gradients; given ``weights``, one per pair, the weighted mean ``sum(w l) / sum(w)``) and
``metrics`` is a dict of detached, unweighted scalars:

- ``rewards/chosen``, ``rewards/rejected``: mean implicit reward ``beta * (log pi - log pi_ref)``
  (SimPO: ``beta * mean-token log pi``, it has no reference);
- ``rewards/margins``: mean of chosen minus rejected reward;
- ``rewards/accuracy``: fraction of pairs whose chosen reward is the larger one.

Notation used in the docstrings: ``h = (log pi(y_w) - log pi_ref(y_w)) - (log pi(y_l) - log pi_ref(y_l))``
is the policy-vs-reference log-ratio margin, ``sigma`` the logistic function.

This module imports only torch (and our weighting helper), so tests import it directly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rlhfkit.losses.weighting import weighted_mean

Metrics = dict[str, torch.Tensor]


def _pair_metrics(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor) -> Metrics:
    chosen_rewards, rejected_rewards = chosen_rewards.detach(), rejected_rewards.detach()
    return {
        "rewards/chosen": chosen_rewards.mean(),
        "rewards/rejected": rejected_rewards.mean(),
        "rewards/margins": (chosen_rewards - rejected_rewards).mean(),
        "rewards/accuracy": (chosen_rewards > rejected_rewards).float().mean(),
    }


def _logratios(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps):
    chosen_logratios = policy_chosen_logps - ref_chosen_logps  # (B,)
    rejected_logratios = policy_rejected_logps - ref_rejected_logps  # (B,)
    return chosen_logratios, rejected_logratios


def dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float = 0.1,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, Metrics]:
    """DPO, sigmoid form (Rafailov et al. 2023, "Direct Preference Optimization", Eq. 7).

    ``L = -log sigma(beta * h)``, averaged over the batch. All inputs have shape ``(B,)``.

    Closed form: with ``h = 0`` the loss is ``log 2 = 0.693147``; with beta=0.1 and ``h = 10``
    it is ``log(1 + e^-1) = 0.313262``.
    """
    chosen_logratios, rejected_logratios = _logratios(
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps
    )
    margin = chosen_logratios - rejected_logratios  # (B,) h
    losses = -F.logsigmoid(beta * margin)  # (B,)
    return weighted_mean(losses, weights), _pair_metrics(beta * chosen_logratios, beta * rejected_logratios)


def cdpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float = 0.1,
    label_smoothing: float = 0.1,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, Metrics]:
    """Conservative DPO (Mitchell 2023, "A note on DPO with noisy preferences"): labels flipped with
    probability ``eps = label_smoothing``.

    ``L = -(1 - eps) log sigma(beta h) - eps log sigma(-beta h)``. Shapes ``(B,)``.
    Unlike plain DPO, its minimum is at a finite margin: ``beta h* = log((1 - eps) / eps)``.

    Closed form: ``h = 0`` gives ``log 2`` for any eps; beta=0.1, eps=0.25, ``h = 10`` gives
    ``0.75 log(1 + e^-1) + 0.25 log(1 + e^1) = 0.234947 + 0.328316 = 0.563262``.
    """
    if not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"label_smoothing must be in [0, 0.5), got {label_smoothing}")
    chosen_logratios, rejected_logratios = _logratios(
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps
    )
    margin = chosen_logratios - rejected_logratios  # (B,)
    losses = -(1 - label_smoothing) * F.logsigmoid(beta * margin) - label_smoothing * F.logsigmoid(-beta * margin)
    return weighted_mean(losses, weights), _pair_metrics(beta * chosen_logratios, beta * rejected_logratios)


def robust_dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float = 0.1,
    label_smoothing: float = 0.1,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, Metrics]:
    """Robust DPO (Chowdhury et al. 2024, "Provably Robust DPO", Eq. 9): an unbiased estimate of the
    clean DPO loss when labels are flipped with known probability ``eps = label_smoothing``.

    ``L = ((1 - eps)(-log sigma(beta h)) - eps(-log sigma(-beta h))) / (1 - 2 eps)``. Shapes ``(B,)``.

    Closed form: beta=0.1, eps=0.25, ``h = 10``:
    ``(0.75 * 0.313262 - 0.25 * 1.313262) / 0.5 = (0.234947 - 0.328316) / 0.5 = -0.186737``.
    """
    if not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"label_smoothing must be in [0, 0.5), got {label_smoothing}")
    chosen_logratios, rejected_logratios = _logratios(
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps
    )
    margin = chosen_logratios - rejected_logratios  # (B,)
    clean = -(1 - label_smoothing) * F.logsigmoid(beta * margin)
    flipped = -label_smoothing * F.logsigmoid(-beta * margin)
    losses = (clean - flipped) / (1 - 2 * label_smoothing)
    return weighted_mean(losses, weights), _pair_metrics(beta * chosen_logratios, beta * rejected_logratios)


def ipo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    chosen_lengths: torch.Tensor,
    rejected_lengths: torch.Tensor,
    beta: float = 0.1,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, Metrics]:
    """IPO (Azar et al. 2023, "A General Theoretical Paradigm...", Eq. 17), ``tau = beta``.

    ``L = (h_avg - 1 / (2 beta))^2`` where the log-ratios are averaged per completion token,
    ``h_avg = chosen_logratio / |y_w| - rejected_logratio / |y_l|`` (as in TRL; the IPO authors
    confirmed this normalisation). Log-prob inputs ``(B,)`` are token sums; lengths ``(B,)``
    are completion token counts (clamped to >= 1). Metrics use the un-normalised log-ratios.

    Closed form: beta=0.1, ``h_avg = 0`` gives ``(1/0.2)^2 = 25``; ``h_avg = 5`` gives 0.
    """
    chosen_logratios, rejected_logratios = _logratios(
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps
    )
    chosen_avg = chosen_logratios / chosen_lengths.clamp(min=1)  # (B,)
    rejected_avg = rejected_logratios / rejected_lengths.clamp(min=1)  # (B,)
    losses = (chosen_avg - rejected_avg - 1 / (2 * beta)) ** 2
    return weighted_mean(losses, weights), _pair_metrics(beta * chosen_logratios, beta * rejected_logratios)


def simpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    chosen_lengths: torch.Tensor,
    rejected_lengths: torch.Tensor,
    beta: float = 2.0,
    gamma: float = 0.5,
    label_smoothing: float = 0.0,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, Metrics]:
    """SimPO (Meng et al. 2024, "Simple Preference Optimization with a Reference-Free Reward", Eq. 6).

    Reference-free and length-normalised: the implicit reward is
    ``r(y) = beta / |y| * log pi(y)``, and
    ``L = -log sigma(r(y_w) - r(y_l) - gamma)``; ``label_smoothing`` eps mixes in the flipped
    term like cDPO: ``-(1-eps) log sigma(z) - eps log sigma(-z)``. Inputs ``(B,)`` (token sums,
    token counts). As in the paper and TRL, ``gamma`` is the target reward margin, so the code's
    ``gamma / beta`` offset on the average log-probs is the same thing.

    Closed form: beta=2, gamma=0.5, equal average log-probs: ``log(1 + e^0.5) = 0.974077``.
    """
    chosen_avg = policy_chosen_logps / chosen_lengths.clamp(min=1)  # (B,)
    rejected_avg = policy_rejected_logps / rejected_lengths.clamp(min=1)  # (B,)
    z = beta * (chosen_avg - rejected_avg - gamma / beta)  # (B,)
    losses = -(1 - label_smoothing) * F.logsigmoid(z) - label_smoothing * F.logsigmoid(-z)
    return weighted_mean(losses, weights), _pair_metrics(beta * chosen_avg, beta * rejected_avg)
