"""RAFT (Dong et al. 2023, "RAFT: Reward rAnked FineTuning"): sample N per prompt, keep the best by
reward, fine-tune on them, repeat.

Phases (``online.OnlineTrainer``): rollout ``group_size`` completions per prompt -> score ->
selection: the top ``raft_keep`` share of each prompt's samples (at least one; ties broken by
sample order) -> loss: the mean negative log-likelihood of the kept completions' tokens (SFT on
them) -> step. The paper's KL control is implicit (few steps on the model's own samples); with
``kl_placement="loss"`` and ``kl_coef`` > 0 a per-token KL term on the kept tokens is added.
"""

from __future__ import annotations

import math

import torch

from rlhfkit.losses.kl import kl_estimator
from rlhfkit.trainers.online import OnlineTrainer


def top_per_group(rewards: torch.Tensor, group_size: int, keep: float) -> torch.Tensor:
    """(B*G,) bool: the ``ceil(keep * G)`` highest rewards of each group (stable on ties)."""
    grouped = rewards.view(-1, group_size)  # (B, G)
    k = max(1, math.ceil(keep * group_size))
    order = torch.sort(grouped, dim=1, descending=True, stable=True).indices[:, :k]  # (B, k)
    chosen = torch.zeros_like(grouped, dtype=torch.bool).scatter_(1, order, True)
    return chosen.view(-1)


class RAFTTrainer(OnlineTrainer):
    name = "raft"

    def advantages(self, buffer: dict) -> dict:
        return {"keep": top_per_group(buffer["reward"], self.cfg.group_size, self.cfg.raft_keep)}

    def micro_weight(self, groups) -> float:
        rows = self.seq_rows(groups)
        return float((self.buffer["mask"][rows] & self.buffer["keep"][rows, None]).sum())  # kept tokens

    def policy_loss(self, logp: torch.Tensor, rows: list[int]) -> tuple[torch.Tensor, dict]:
        b, cfg = self.buffer, self.cfg
        mask = (b["mask"][rows] & b["keep"][rows, None]).to(logp.dtype)  # (S, T) kept tokens only
        tokens = mask.sum().clamp(min=1)
        loss = -(logp * mask).sum() / tokens
        metrics = {"kept_reward": b["score"][rows][b["keep"][rows]].mean()}
        if cfg.kl_placement == "loss" and cfg.kl_coef:
            kl = (kl_estimator(cfg.kl_estimator)(logp, b["ref_logp"][rows]) * mask).sum() / tokens
            loss = loss + cfg.kl_coef * kl
            metrics["kl"] = kl.detach()
        return loss, metrics
