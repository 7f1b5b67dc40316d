"""GRPO (Shao et al. 2024, "DeepSeekMath", section 4.1): group-relative advantages, no critic.

Phases (``online.OnlineTrainer``): rollout G completions per prompt -> score -> advantages
``A_i = (r_i - mean_g r) / (std_g r + eps)`` (or, with ``advantage_scale="none"``, Dr. GRPO's
unscaled ``r_i - mean_g r``, Liu et al. 2025) -> clipped surrogate with the per-token KL anchor
``beta * k(logp, ref_logp)`` (``losses.policy.grpo_loss``) -> step -> log.

Departures from the paper, all settings: the KL estimator is chosen (``kl_estimator``, k3 as in
the paper; its in-loss gradient is that of KL(ref || pi), see ``losses/kl.py``), the KL can be
put in the reward instead (``kl_placement="reward"``), and the aggregation over tokens is chosen
(``sequence_mean`` as in the paper, ``token_mean``, or Dr. GRPO's ``constant``).
"""

from __future__ import annotations

import torch

from rlhfkit.advantages import group_advantages
from rlhfkit.losses.policy import grpo_loss
from rlhfkit.trainers.online import OnlineTrainer


class GRPOTrainer(OnlineTrainer):
    name = "grpo"

    def advantages(self, buffer: dict) -> dict:
        return {"advantages": group_advantages(buffer["reward"], self.cfg.group_size, scale=self.cfg.advantage_scale)}

    def policy_loss(self, logp: torch.Tensor, rows: list[int]) -> tuple[torch.Tensor, dict]:
        b, cfg = self.buffer, self.cfg
        beta = cfg.kl_coef if cfg.kl_placement == "loss" else 0.0
        return grpo_loss(logp, b["old_logp"][rows], b["advantages"][rows], b["mask"][rows],
                         ref_logp=b["ref_logp"][rows], beta=beta, kl_estimator=cfg.kl_estimator,
                         clip_eps=cfg.clip_eps, aggregation=cfg.aggregation, max_tokens=cfg.max_new_tokens)
