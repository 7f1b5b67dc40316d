"""RLOO (Ahmadian et al. 2024, "Back to Basics: Revisiting REINFORCE Style Optimization"):
REINFORCE at the sequence level with the leave-one-out baseline of the other G-1 samples.

Phases (``online.OnlineTrainer``): rollout G completions per prompt -> score (minus
``kl_coef`` times the sequence KL estimate when ``kl_placement="reward"``, the paper's form) ->
advantages ``A_i = r_i - mean_{j != i} r_j`` -> sequence-level importance-weighted REINFORCE,
PPO-clipped when the rollout is reused (``ppo_epochs > 1``; on-policy the ratio is 1) -> step.

With ``kl_placement="loss"`` the per-token KL term ``kl_coef * k(logp, ref_logp)`` is added to the
loss as a token mean, as GRPO does.
"""

from __future__ import annotations

import torch

from rlhfkit.advantages import rloo_advantages
from rlhfkit.losses.kl import kl_estimator
from rlhfkit.losses.policy import reinforce_loss
from rlhfkit.trainers.online import OnlineTrainer


class RLOOTrainer(OnlineTrainer):
    name = "rloo"
    default_kl_placement = "reward"

    def micro_weight(self, groups) -> float:
        return float(len(self.seq_rows(groups)))  # the loss is a mean over sequences

    def advantages(self, buffer: dict) -> dict:
        return {"advantages": rloo_advantages(buffer["reward"], self.cfg.group_size)}

    def policy_loss(self, logp: torch.Tensor, rows: list[int]) -> tuple[torch.Tensor, dict]:
        b, cfg = self.buffer, self.cfg
        clip = cfg.clip_eps if cfg.ppo_epochs > 1 else None
        loss, metrics = reinforce_loss(logp, b["old_logp"][rows], b["advantages"][rows], b["mask"][rows], clip_eps=clip)
        if cfg.kl_placement == "loss" and cfg.kl_coef:
            mask = b["mask"][rows].to(logp.dtype)
            kl = kl_estimator(cfg.kl_estimator)(logp, b["ref_logp"][rows]) * mask  # (S, T)
            kl_seq = kl.sum(-1) / mask.sum(-1).clamp(min=1)  # token mean per sequence
            loss = loss + cfg.kl_coef * kl_seq.mean()
            metrics["kl"] = kl_seq.detach().mean()
        return loss, metrics
