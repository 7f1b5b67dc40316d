"""KTO: preference optimisation from unpaired thumbs-up / thumbs-down feedback.

Ethayarajh et al. 2024, "KTO: Model Alignment as Prospect Theoretic Optimization", Eq. 7-8.
Imports only torch, so tests import it directly.
"""

from __future__ import annotations

import torch


def kto_loss(
    policy_logps: torch.Tensor,
    ref_logps: torch.Tensor,
    desirable: torch.Tensor,
    policy_kl_logps: torch.Tensor,
    ref_kl_logps: torch.Tensor,
    beta: float = 0.1,
    desirable_weight: float = 1.0,
    undesirable_weight: float = 1.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """KTO loss on a batch of unpaired completions.

    ``policy_logps``, ``ref_logps``: ``(B,)`` summed completion log-probs; ``desirable``: ``(B,)``
    bool, True for thumbs-up. ``policy_kl_logps``, ``ref_kl_logps``: ``(B,)`` log-probs of
    *mismatched* completions (completion i paired with prompt i+1), whose mean log-ratio
    estimates the reference point ``z0 = KL(pi || pi_ref)`` (clamped at 0, no gradient).

    With ``r = log pi(y|x) - log pi_ref(y|x)``:
    desirable: ``l = w_d (1 - sigma(beta (r - z0)))``; undesirable: ``l = w_u (1 - sigma(beta (z0 - r)))``.
    ``L`` is the mean of ``l`` over all B completions (as TRL does; the paper weights the two sums
    by their counts the same way).

    Closed form: beta=0.1, z0=0, one desirable with r=10 and one undesirable with r=-10:
    both terms are ``1 - sigma(1) = 0.268941`` so ``L = 0.268941``.
    """
    desirable = desirable.bool()
    kl = (policy_kl_logps - ref_kl_logps).mean().detach().clamp(min=0)  # scalar z0
    logratios = policy_logps - ref_logps  # (B,)
    chosen_losses = desirable_weight * (1 - torch.sigmoid(beta * (logratios[desirable] - kl)))
    rejected_losses = undesirable_weight * (1 - torch.sigmoid(beta * (kl - logratios[~desirable])))
    loss = torch.cat([chosen_losses, rejected_losses]).mean()
    rewards = beta * logratios.detach()
    nan = torch.tensor(float("nan"))
    chosen_rewards = rewards[desirable].mean() if desirable.any() else nan
    rejected_rewards = rewards[~desirable].mean() if (~desirable).any() else nan
    metrics = {
        "kl": kl,
        "rewards/chosen": chosen_rewards,
        "rewards/rejected": rejected_rewards,
        "rewards/margins": chosen_rewards - rejected_rewards,
        # accuracy for unpaired data: desirable rewards above z0-scaled, undesirable below
        "rewards/accuracy": ((rewards > beta * kl) == desirable).float().mean(),
    }
    return loss, metrics
