"""PPO for language models (Schulman et al. 2017; Ziegler et al. 2019; Ouyang et al. 2022).

Phases (``online.OnlineTrainer``): rollout -> score -> per-token rewards
``r_t = -kl_coef * k1_t`` plus the score on the last token (the KL anchor in the reward, the
InstructGPT form) -> values from a linear value head on the policy's hidden states (one shared
backbone: no second 135M network) -> GAE advantages (whitened) and returns -> clipped policy loss
+ ``vf_coef`` * clipped value loss, for ``ppo_epochs`` optimiser steps on the same rollout ->
adaptive KL controller update (``kl_target`` > 0) -> log.

Departures: the value head shares the policy's backbone (OpenRLHF and TRL's old PPO default to a
separate critic); with ``kl_placement="loss"`` the anchor is a per-token loss term instead.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from rlhfkit.advantages import gae, rewards_with_kl, whiten
from rlhfkit.losses.kl import kl_estimator
from rlhfkit.losses.kl_control import AdaptiveKLController, FixedKLController
from rlhfkit.losses.policy import ppo_policy_loss, ppo_value_loss
from rlhfkit.packing import per_sequence
from rlhfkit.trainers.online import OnlineTrainer


class PolicyWithValue(nn.Module):
    """The policy and a scalar value head reading its last hidden states (what the optimiser trains)."""

    def __init__(self, policy):
        super().__init__()
        self.policy = policy
        hidden = policy.config.hidden_size
        self.value_head = nn.Linear(hidden, 1)
        nn.init.normal_(self.value_head.weight, std=1.0 / (hidden + 1))
        nn.init.zeros_(self.value_head.bias)
        self.value_head.to(next(policy.parameters()).device)


class PPOTrainer(OnlineTrainer):
    name = "ppo"
    default_kl_placement = "reward"

    def trainable_module(self) -> nn.Module:
        torch.manual_seed(self.cfg.seed)
        cfg = self.cfg
        self.kl_ctl = (AdaptiveKLController(cfg.kl_coef, cfg.kl_target, cfg.kl_horizon) if cfg.kl_target > 0
                       else FixedKLController(cfg.kl_coef))
        return PolicyWithValue(self.policy)

    def _values(self, buffer: dict, groups):
        logp, hidden, packed = self.sequence_token_logps(self.policy, buffer, groups, return_hidden=True)
        values = self.model.value_head(hidden.to(self.model.value_head.weight.dtype)).squeeze(-1).float()  # (N,)
        return logp, per_sequence(values, packed, buffer["mask"].shape[1])

    def advantages(self, buffer: dict) -> dict:
        cfg, mask = self.cfg, buffer["mask"]
        _, old_values = self._values(buffer, range(len(buffer["prompt_index"])))
        rewards, _ = rewards_with_kl(buffer["score"], buffer["old_logp"], buffer["ref_logp"], mask,
                                     placement=cfg.kl_placement, kl_coef=self.kl_ctl.kl_coef, estimator="k1")
        advantages, returns = gae(rewards, old_values, mask, cfg.gamma, cfg.lam)
        return {"advantages": whiten(advantages, mask), "returns": returns, "old_values": old_values,
                "kl_coef": self.kl_ctl.kl_coef}

    def loss(self, groups) -> tuple[torch.Tensor, dict]:
        b, cfg = self.buffer, self.cfg
        rows = self.seq_rows(groups)
        logp, values = self._values(b, groups)  # forward: policy log-probs and values
        mask = b["mask"][rows]
        policy_loss, metrics = ppo_policy_loss(logp, b["old_logp"][rows], b["advantages"][rows], mask,
                                               clip_eps=cfg.clip_eps, aggregation=cfg.aggregation,
                                               max_tokens=cfg.max_new_tokens)
        value_loss, value_metrics = ppo_value_loss(values, b["old_values"][rows], b["returns"][rows], mask,
                                                   clip_eps=cfg.clip_eps, aggregation=cfg.aggregation,
                                                   max_tokens=cfg.max_new_tokens)
        loss = policy_loss + cfg.vf_coef * value_loss
        if cfg.kl_placement == "loss" and b["kl_coef"]:
            m = mask.to(logp.dtype)
            kl = (kl_estimator(cfg.kl_estimator)(logp, b["ref_logp"][rows]) * m).sum() / m.sum()
            loss = loss + b["kl_coef"] * kl
        return loss, {**metrics, **value_metrics, "policy_loss": policy_loss.detach(),
                      "value_loss": value_loss.detach()}

    def after_step(self, record: dict) -> None:
        super().after_step(record)
        record["kl_coef"] = self.buffer["kl_coef"]
        if record["step"] % self.cfg.ppo_epochs == 0:  # the rollout is spent: adapt the KL weight to it
            self.kl_ctl.update(self.buffer["metrics"]["kl/mean"], len(self.buffer["prompt_index"]) * self.cfg.group_size)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "kl_ctl": self.kl_ctl.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.kl_ctl.load_state_dict(state["kl_ctl"])

    def save(self, out: str | Path | None = None) -> Path:
        from safetensors.torch import save_file

        folder = super().save(out)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.model.value_head.state_dict().items()},
                  str(folder / "value_head.safetensors"))
        return folder
