"""Policy-gradient losses for online RL: PPO (policy and value), GRPO, REINFORCE/RLOO, entropy.

PPO clipped surrogate (Schulman et al. 2017, Eq. 7), per token with ``r_t = pi(y_t) / pi_old(y_t)``:

    L_t = -min(r_t A_t, clip(r_t, 1 - eps_low, 1 + eps_high) A_t)

``eps_high > eps_low`` is DAPO's "clip-higher" (Yu et al. 2025). Where the clipped branch is the
smaller one the token's gradient is exactly zero; ``clip_fraction`` counts those tokens.

GRPO (Shao et al. 2024, Eq. 3) is the same surrogate with one advantage per sequence, plus
``beta * k`` per token, ``k`` a KL estimator of :mod:`rlhfkit.losses.kl` (k3 in the paper).

How per-token losses become one number (``aggregation``), as compared in Dr. GRPO
(Liu et al. 2025, "Understanding R1-Zero-like training"), with ``|y_i|`` the real length of row i:

- ``"token_mean"``: ``sum_i sum_t L_it / sum_i |y_i|``: every token of the batch weighs the same
  (DAPO; TRL's "bnpo"/"dapo" up to its normalisation across processes).
- ``"sequence_mean"``: ``(1/B) sum_i (1/|y_i|) sum_t L_it``: original GRPO; a token of a short
  answer weighs more than a token of a long one (the length bias Dr. GRPO points out).
- ``"constant"``: ``sum_i sum_t L_it / (B * max_tokens)``: Dr. GRPO; a fixed divisor
  (``max_tokens`` = the generation budget), so no length-dependent weighting at all.

All losses take right-padded ``(B, T)`` tensors with ``mask`` 1 on completion tokens and return
``(loss, metrics)``: a scalar with gradients and a dict of detached scalars, where token statistics
are token means over the real tokens whatever the aggregation. Imports only torch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rlhfkit.losses import kl as kl_estimators
from rlhfkit.losses.kl import kl_k3

Metrics = dict[str, torch.Tensor]
AGGREGATIONS = ("token_mean", "sequence_mean", "constant")


def aggregate(
    per_token: torch.Tensor, mask: torch.Tensor, aggregation: str, max_tokens: int | None = None
) -> torch.Tensor:
    """Reduce ``(B, T)`` per-token losses to a scalar as described in the module docstring.

    A row with no real token contributes 0 under ``"sequence_mean"`` (its length is taken as 1).
    Example: losses (1, 1, 1 | 4, pad, pad) -> token_mean 7/4, sequence_mean (1 + 4)/2,
    constant with max_tokens=3: 7/6.
    """
    if per_token.shape != mask.shape or per_token.dim() != 2:
        raise ValueError(f"per-token loss {tuple(per_token.shape)} and mask {tuple(mask.shape)} must both be (B, T)")
    m = mask.to(per_token.dtype)
    if aggregation == "token_mean":
        return (per_token * m).sum() / m.sum().clamp(min=1)
    if aggregation == "sequence_mean":
        return ((per_token * m).sum(-1) / m.sum(-1).clamp(min=1)).mean()
    if aggregation == "constant":
        if max_tokens is None or max_tokens < 1:
            raise ValueError(f"aggregation='constant' needs max_tokens >= 1 (the generation budget), got {max_tokens!r}")
        return (per_token * m).sum() / (per_token.shape[0] * max_tokens)
    raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")


def _masked_mean(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return (x * m).sum() / m.sum().clamp(min=1)


def _token_advantages(advantages: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B,) sequence advantages broadcast over tokens, or (B, T) token advantages, detached."""
    if advantages.shape == mask.shape[:1]:
        return advantages.detach().unsqueeze(-1)  # (B, 1)
    if advantages.shape == mask.shape:
        return advantages.detach()
    raise ValueError(f"advantages must be (B,) or (B, T) = {tuple(mask.shape)}, got {tuple(advantages.shape)}")


def _clipped_surrogate(logp, old_logp, advantages, mask, clip_eps, clip_eps_high):
    """Per-token PPO loss (B, T) and its detached metrics."""
    if logp.shape != mask.shape or old_logp.shape != mask.shape or logp.dim() != 2:
        raise ValueError(f"logp {tuple(logp.shape)}, old_logp {tuple(old_logp.shape)} and mask "
                         f"{tuple(mask.shape)} must all be (B, T)")
    if clip_eps <= 0 or (clip_eps_high is not None and clip_eps_high <= 0):
        raise ValueError(f"clip ranges must be > 0, got clip_eps={clip_eps}, clip_eps_high={clip_eps_high}")
    high = clip_eps if clip_eps_high is None else clip_eps_high
    adv = _token_advantages(advantages, mask)  # (B, T) or (B, 1)
    log_ratio = logp - old_logp.detach()  # (B, T)
    ratio = torch.exp(log_ratio)  # (B, T)
    unclipped = ratio * adv
    clipped_ratio = ratio.clamp(1.0 - clip_eps, 1.0 + high)  # no gradient outside the range
    clipped = clipped_ratio * adv
    is_clipped = clipped < unclipped  # (B, T): the pessimistic bound picks the flat branch
    per_token = -torch.where(is_clipped, clipped, unclipped)  # (B, T)
    m = mask.to(ratio.dtype)
    with torch.no_grad():
        real = mask != 0
        r = ratio[real] if real.any() else ratio.new_ones(1)
        metrics = {
            "clip_fraction": _masked_mean(is_clipped.to(ratio.dtype), m),
            "clip_fraction_low": _masked_mean((is_clipped & (ratio < 1)).to(ratio.dtype), m),
            "clip_fraction_high": _masked_mean((is_clipped & (ratio > 1)).to(ratio.dtype), m),
            # KL(pi_old || pi) from the rollout's own samples: k3 with r = pi / pi_old.
            "approx_kl": _masked_mean(kl_k3(old_logp.detach(), logp.detach()), m),
            "ratio_mean": r.mean(),
            "ratio_min": r.min(),
            "ratio_max": r.max(),
        }
    return per_token, metrics


def ppo_policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_eps: float = 0.2,
    clip_eps_high: float | None = None,
    aggregation: str = "token_mean",
    max_tokens: int | None = None,
) -> tuple[torch.Tensor, Metrics]:
    """PPO clipped surrogate, aggregated as ``aggregation`` says.

    ``logp``: ``(B, T)`` log-probs of the sampled tokens under the current policy (with grad);
    ``old_logp``: ``(B, T)`` under the policy that sampled them; ``advantages``: ``(B, T)`` or
    ``(B,)``; ``mask``: ``(B, T)``. Closed form: at ``logp == old_logp`` the ratio is 1, nothing is
    clipped and the token-mean loss is ``-mean(A)`` over the real tokens.
    Metrics: clip_fraction (+ _low/_high), approx_kl, ratio_mean/min/max.
    """
    per_token, metrics = _clipped_surrogate(logp, old_logp, advantages, mask, clip_eps, clip_eps_high)
    return aggregate(per_token, mask, aggregation, max_tokens), metrics


def grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ref_logp: torch.Tensor | None = None,
    beta: float = 0.0,
    kl_estimator: str = "k3",
    clip_eps: float = 0.2,
    clip_eps_high: float | None = None,
    aggregation: str = "sequence_mean",
    max_tokens: int | None = None,
) -> tuple[torch.Tensor, Metrics]:
    """GRPO: ``L_t = -min(r_t A_i, clip(r_t) A_i) + beta * k(logp_t, ref_logp_t)``, aggregated.

    ``advantages``: ``(B,)`` group advantages (:func:`rlhfkit.advantages.group_advantages`);
    ``logp``, ``old_logp``, ``ref_logp``, ``mask``: ``(B, T)``. ``beta = 0`` needs no reference.
    The KL term is evaluated on tokens sampled by ``pi_old``, as in the paper and TRL. Its gradient
    is that of KL(ref || pi) for "k3" and KL(pi || ref) for "k2" (see :mod:`rlhfkit.losses.kl`).
    Default aggregation ``"sequence_mean"`` is the paper's; Dr. GRPO uses ``"constant"`` with
    ``scale="none"`` advantages. Metrics: those of :func:`ppo_policy_loss`, plus ``kl`` (token mean).
    """
    per_token, metrics = _clipped_surrogate(logp, old_logp, advantages, mask, clip_eps, clip_eps_high)
    if beta != 0.0:
        if ref_logp is None or ref_logp.shape != logp.shape:
            raise ValueError(f"beta={beta} needs ref_logp of shape {tuple(logp.shape)}, "
                             f"got {None if ref_logp is None else tuple(ref_logp.shape)}")
        kl = kl_estimators.kl_estimator(kl_estimator)(logp, ref_logp.detach())  # (B, T)
        per_token = per_token + beta * kl
        metrics["kl"] = _masked_mean(kl.detach(), mask.to(kl.dtype))
    return aggregate(per_token, mask, aggregation, max_tokens), metrics


def reinforce_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_eps: float | None = None,
) -> tuple[torch.Tensor, Metrics]:
    """Sequence-level REINFORCE with an importance ratio, for RLOO (Ahmadian et al. 2024).

    ``rho_i = exp(sum_t logp_it - sum_t old_logp_it)``; ``L = -(1/B) sum_i rho_i A_i``, or with
    ``clip_eps`` the PPO bound at sequence level, ``-(1/B) sum_i min(rho_i A_i, clip(rho_i) A_i)``
    (as TRL's RLOO trainer did). On-policy (``rho = 1``) the gradient is the REINFORCE one,
    ``-(1/B) sum_i A_i grad log pi(y_i)``, and the loss value is ``-mean(A)``.
    ``advantages``: ``(B,)`` (:func:`rlhfkit.advantages.rloo_advantages`); others ``(B, T)``.
    Metrics: clip_fraction (of sequences), ratio_mean/min/max.
    """
    if logp.shape != mask.shape or old_logp.shape != mask.shape or logp.dim() != 2:
        raise ValueError(f"logp {tuple(logp.shape)}, old_logp {tuple(old_logp.shape)} and mask "
                         f"{tuple(mask.shape)} must all be (B, T)")
    if advantages.shape != mask.shape[:1]:
        raise ValueError(f"advantages must be (B,) = ({mask.shape[0]},), got {tuple(advantages.shape)}")
    m = mask.to(logp.dtype)
    seq_log_ratio = ((logp - old_logp.detach()) * m).sum(-1)  # (B,)
    ratio = torch.exp(seq_log_ratio)  # (B,)
    adv = advantages.detach()
    unclipped = ratio * adv
    if clip_eps is None:
        is_clipped = torch.zeros_like(ratio, dtype=torch.bool)
        per_seq = -unclipped
    else:
        clipped = ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps) * adv
        is_clipped = clipped < unclipped
        per_seq = -torch.where(is_clipped, clipped, unclipped)  # (B,)
    r = ratio.detach()
    metrics = {"clip_fraction": is_clipped.to(r.dtype).mean(), "ratio_mean": r.mean(),
               "ratio_min": r.min(), "ratio_max": r.max()}
    return per_seq.mean(), metrics


def ppo_value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip_eps: float = 0.2,
    aggregation: str = "token_mean",
    max_tokens: int | None = None,
) -> tuple[torch.Tensor, Metrics]:
    """Clipped value loss of PPO2 (OpenAI baselines ``ppo2/model.py``):

    ``v_clip = V_old + clip(V - V_old, -eps, eps)``; ``L_t = 0.5 * max((V - R)^2, (v_clip - R)^2)``.
    All inputs ``(B, T)``; ``returns`` from :func:`rlhfkit.advantages.gae`. The max keeps the
    pessimistic error, so a value head cannot move more than ``eps`` per rollout to chase a
    return. Metrics: value_clip_fraction (tokens where the clipped error is the larger),
    value_mean, value_error (mean squared error of the unclipped values).
    """
    for name, x in (("values", values), ("old_values", old_values), ("returns", returns)):
        if x.shape != mask.shape or x.dim() != 2:
            raise ValueError(f"{name} must be (B, T) like mask {tuple(mask.shape)}, got {tuple(x.shape)}")
    old_values, returns = old_values.detach(), returns.detach()
    v_clipped = old_values + (values - old_values).clamp(-clip_eps, clip_eps)  # (B, T)
    err = (values - returns) ** 2
    err_clipped = (v_clipped - returns) ** 2
    per_token = 0.5 * torch.maximum(err, err_clipped)  # (B, T)
    m = mask.to(values.dtype)
    with torch.no_grad():
        metrics = {"value_clip_fraction": _masked_mean((err_clipped > err).to(m.dtype), m),
                   "value_mean": _masked_mean(values, m), "value_error": _masked_mean(err, m)}
    return aggregate(per_token, mask, aggregation, max_tokens), metrics


def entropy_from_logits(logits: torch.Tensor, chunk_size: int = 128) -> torch.Tensor:
    """Entropy in nats of the softmax over the last axis, ``(..., V) -> (...)``, computed in fp32
    (fp64 inputs stay fp64), ``chunk_size`` rows at a time so a bf16 ``(B, T, V)`` batch never
    has a second full-size fp32 copy. ``H = logsumexp(z) - sum softmax(z) z``; uniform over V
    gives ``log V``. Differentiable (usable as an entropy bonus).
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
    flat = logits.reshape(-1, logits.shape[-1])  # (N, V)
    parts = []
    for chunk in flat.split(chunk_size, dim=0):
        logp = F.log_softmax(chunk.to(dtype), dim=-1)  # (n, V)
        parts.append(-(logp.exp() * logp).sum(-1))
    out = torch.cat(parts) if parts else flat.new_zeros(0, dtype=dtype)
    return out.reshape(logits.shape[:-1])
