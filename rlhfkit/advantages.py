"""Rewards -> advantages for online RL: pure tensor functions, no model, no config.

- :func:`token_rewards` / :func:`rewards_with_kl`: the sequence score sits on the last real token
  and a per-token KL penalty ``-kl_coef * k_t`` on every token (Ziegler et al. 2019; Ouyang et al.
  2022, Eq. 2), or the KL is left for the loss (GRPO), chosen by an explicit ``placement``.
- :func:`gae`: generalised advantage estimation (Schulman et al. 2016, Eq. 16),
  ``delta_t = r_t + gamma V_{t+1} - V_t``, ``A_t = sum_l (gamma lam)^l delta_{t+l}``.
- :func:`group_advantages`: GRPO's group-relative advantage ``(r_i - mean_g) / (std_g + eps)``
  (Shao et al. 2024, DeepSeekMath, Sec. 4.1.2), or Dr. GRPO's ``r_i - mean_g`` without the std
  (Liu et al. 2025, "Understanding R1-Zero-like training").
- :func:`rloo_advantages`: REINFORCE leave-one-out, ``r_i - mean_{j != i} r_j``
  (Kool et al. 2019; Ahmadian et al. 2024, "Back to basics").
- :func:`whiten`: masked standardisation (as TRL's old ``masked_whiten``).

Advantages are targets, not things to differentiate: every function here returns detached tensors.
Token tensors are right-padded ``(B, T)`` with ``mask`` 1 on completion tokens. Grouped rewards
come either as ``(B, G)`` or flat ``(B*G,)`` with the G samples of one prompt consecutive.
Degenerate groups are defined, never NaN: a group of one sample, or a group whose rewards are all
equal, gets advantage exactly 0 (there is nothing to compare it with).
"""

from __future__ import annotations

import torch

from rlhfkit.losses.kl import kl_estimator

KL_PLACEMENTS = ("reward", "loss")


def _check_tokens(name: str, x: torch.Tensor, mask: torch.Tensor) -> None:
    if x.dim() != 2 or x.shape != mask.shape:
        raise ValueError(f"{name} must be (B, T) like mask {tuple(mask.shape)}, got {tuple(x.shape)}")


def whiten(values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """``(x - mean) / sqrt(var + eps)`` over the real tokens of the whole batch; padding -> 0.

    ``values``, ``mask``: ``(B, T)``. The variance is Bessel-corrected (``n - 1``), as in TRL's
    ``masked_whiten``; with a single real token it is taken as 0. ``shift_mean=False`` adds the
    mean back (rescale only), which keeps the sign of rewards.
    """
    _check_tokens("values", values, mask)
    values = values.detach()
    m = mask.to(values.dtype)
    n = m.sum()
    if n < 1:
        raise ValueError("whiten: mask has no real tokens")
    mean = (values * m).sum() / n
    sq = (((values - mean) * m) ** 2).sum()
    var = sq / (n - 1) if n > 1 else torch.zeros_like(sq)
    out = (values - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return out * m


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0, lam: float = 0.95
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation on right-padded token sequences.

    ``rewards``, ``values``, ``mask``: ``(B, T)``; ``values[b, t]`` is V(s_t) before token t.
    The episode ends after the last real token: ``V_{t+1}`` counts only where ``mask[t+1] = 1``
    (a 0 after a 1 is terminal). Returns ``(advantages, returns)``, both ``(B, T)``, 0 on padding,
    ``returns = advantages + values`` (the value-function target).

    Equivalent naive loop, per sequence of real length L::

        a = 0
        for t in reversed(range(L)):
            v_next = values[t + 1] if t + 1 < L else 0
            a = rewards[t] + gamma * v_next - values[t] + gamma * lam * a
            adv[t] = a
    """
    _check_tokens("rewards", rewards, mask)
    _check_tokens("values", values, mask)
    rewards, values = rewards.detach(), values.detach().to(rewards.dtype)
    m = mask.to(rewards.dtype)  # (B, T)
    B, T = rewards.shape
    next_m = torch.cat([m[:, 1:], m.new_zeros(B, 1)], dim=1)  # (B, T): 1 where the episode continues
    next_values = torch.cat([values[:, 1:], values.new_zeros(B, 1)], dim=1) * next_m  # (B, T)
    deltas = rewards + gamma * next_values - values  # (B, T)
    advantages = torch.zeros_like(rewards)
    running = rewards.new_zeros(B)  # (B,)
    for t in reversed(range(T)):  # a recurrence: a loop over T is the clear way to write it
        running = deltas[:, t] + gamma * lam * next_m[:, t] * running
        advantages[:, t] = running
    advantages = advantages * m
    return advantages, (advantages + values) * m


def _grouped(rewards: torch.Tensor, group_size: int | None) -> torch.Tensor:
    """(B*G,) or (B, G) -> (B, G), checking the declared group size."""
    if rewards.dim() == 2:
        if group_size is not None and group_size != rewards.shape[1]:
            raise ValueError(f"group_size={group_size} but rewards are (B, G) = {tuple(rewards.shape)}")
        return rewards.detach()
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be (B*G,) or (B, G), got shape {tuple(rewards.shape)}")
    if group_size is None or group_size < 1:
        raise ValueError(f"flat rewards need group_size >= 1, got {group_size!r}")
    if rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    return rewards.detach().view(-1, group_size)


def group_advantages(
    rewards: torch.Tensor, group_size: int | None = None, scale: str = "std", eps: float = 1e-4
) -> torch.Tensor:
    """GRPO outcome advantages, one per sample: ``(r_i - mean_g) / (std_g + eps)``.

    ``rewards``: ``(B*G,)`` (groups consecutive) or ``(B, G)``; the output has the input's shape.
    ``scale="std"``: divide by the group's sample std (``n - 1``, as TRL; ``eps`` as TRL, 1e-4).
    ``scale="none"``: Dr. GRPO, no division, which removes the question-difficulty weighting.
    Groups of size 1 and groups with equal rewards get exactly 0.
    Example: G=4, r = (1, 0, 0, 0): mean 0.25, std sqrt(0.75/3) = 0.5, A = (1.5, -0.5, -0.5, -0.5)
    (less eps); with scale="none", A = (0.75, -0.25, -0.25, -0.25).
    """
    if scale not in ("std", "none"):
        raise ValueError(f"scale must be 'std' or 'none', got {scale!r}")
    grouped = _grouped(rewards, group_size)  # (B, G)
    centred = grouped - grouped.mean(-1, keepdim=True)  # (B, G)
    tied = grouped.amax(-1, keepdim=True) == grouped.amin(-1, keepdim=True)  # (B, 1): also G = 1
    if scale == "std" and grouped.shape[1] > 1:
        centred = centred / (grouped.std(-1, keepdim=True) + eps)
    return torch.where(tied, torch.zeros_like(centred), centred).view_as(rewards)


def rloo_advantages(rewards: torch.Tensor, group_size: int | None = None) -> torch.Tensor:
    """RLOO: ``A_i = r_i - (1 / (G - 1)) sum_{j != i} r_j = G / (G - 1) * (r_i - mean_g)``.

    The baseline of each sample is the mean of the *other* samples of its prompt, so it does not
    depend on the sample and the REINFORCE gradient stays unbiased. ``rewards``: ``(B*G,)`` or
    ``(B, G)``; output the same shape. G = 1 has no other sample: advantage 0.
    Example: r = (1, 2, 6): A = (1 - 4, 2 - 3.5, 6 - 1.5) = (-3, -1.5, 4.5).
    """
    grouped = _grouped(rewards, group_size)  # (B, G)
    G = grouped.shape[1]
    if G == 1:
        return torch.zeros_like(grouped).view_as(rewards)
    baseline = (grouped.sum(-1, keepdim=True) - grouped) / (G - 1)  # (B, G)
    return (grouped - baseline).view_as(rewards)


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last real token of each row of a ``(B, T)`` mask, ``(B,)``; empty rows raise."""
    if mask.dim() != 2:
        raise ValueError(f"mask must be (B, T), got shape {tuple(mask.shape)}")
    real = mask != 0
    empty = ~real.any(-1)
    if empty.any():
        raise ValueError(f"rows {empty.nonzero().flatten().tolist()} of mask have no real token to score")
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    return torch.where(real, positions, -1).amax(-1)


def token_rewards(
    score: torch.Tensor, kl_per_token: torch.Tensor, mask: torch.Tensor, kl_coef: float
) -> torch.Tensor:
    """Per-token rewards ``r_t = -kl_coef * k_t`` plus ``score`` on the last real token.

    ``score``: ``(B,)`` sequence rewards; ``kl_per_token``, ``mask``: ``(B, T)``. Returns ``(B, T)``,
    0 on padding (Ziegler et al. 2019: ``R(x, y) = r(x, y) - beta log(pi/ref)``, spread
    over tokens so GAE can credit each one).
    """
    _check_tokens("kl_per_token", kl_per_token, mask)
    if score.shape != mask.shape[:1]:
        raise ValueError(f"score must be (B,) = ({mask.shape[0]},), got {tuple(score.shape)}")
    m = mask.to(kl_per_token.dtype)
    rewards = -kl_coef * kl_per_token.detach() * m  # (B, T)
    rows = torch.arange(mask.shape[0], device=mask.device)
    rewards[rows, last_token_index(mask)] += score.detach().to(rewards.dtype)
    return rewards


def rewards_with_kl(
    score: torch.Tensor,
    logp: torch.Tensor,
    ref_logp: torch.Tensor,
    mask: torch.Tensor,
    *,
    placement: str,
    kl_coef: float,
    estimator: str = "k1",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token rewards for a rollout, with the KL anchor placed where the run's config says.

    ``placement="reward"``: ``r_t = -kl_coef * k(logp_t, ref_logp_t)`` plus the score on the last
    token (PPO-style; k1 is the usual choice, its signal reaches the policy through the returns).
    ``placement="loss"``: ``r_t`` is the score alone; the caller must add ``kl_coef * k`` to the loss
    with the current policy's log-probs (``grpo_loss(beta=kl_coef, kl_estimator=...)``); prefer
    k2 there, whose in-loss gradient is that of KL(pi || ref), or know that k3 gives KL(ref || pi).
    ``score``: ``(B,)``; ``logp``, ``ref_logp`` (sampling policy and reference), ``mask``: ``(B, T)``.
    Returns ``(rewards, kl)``: ``(B, T)`` each, detached; ``kl`` is the masked per-token estimate,
    for logging in either placement.
    """
    if placement not in KL_PLACEMENTS:
        raise ValueError(f"KL placement must be one of {KL_PLACEMENTS}, got {placement!r}")
    _check_tokens("logp", logp, mask)
    kl = kl_estimator(estimator)(logp.detach(), ref_logp.detach()) * mask.to(logp.dtype)  # (B, T)
    coef = kl_coef if placement == "reward" else 0.0
    return token_rewards(score, kl, mask, coef), kl
