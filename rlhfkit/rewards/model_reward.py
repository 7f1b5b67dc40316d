"""Scoring (prompt, completion) with a trained reward model, tokenised as the reward trainer does.

The reward model only gives meaningful scores on sequences built the way it was trained, so
the text goes through the same packing-layer rule (``rlhfkit.packing.REWARD_TOKENIZATION``):
the prompt rendered (chat messages through the chat template, assistant slot open) and
tokenised with special tokens, the completion on its own without EOS, the completion cut from
the right and the prompt from the LEFT (its end and the answer's start survive).

The reward is the model's output at the last completion token (``RewardModel.rewards`` on rows
``[prompt | completion]``), averaged over heads when the model has several. An empty completion
(zero tokens) is not run through the model and gets ``empty_reward``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from rlhfkit.models.reward_model import RewardModel
from rlhfkit.packing import REWARD_TOKENIZATION, TokenizedGroup, collate_groups, tokenize_group


def tokenize_for_reward(tokenizer, prompts: Sequence, completions: Sequence[str],
                        max_length: int) -> list[TokenizedGroup | None]:
    """One ``TokenizedGroup`` (prompt + one completion) per sample, or None for an empty completion."""
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
    return [tokenize_group(tokenizer, p, [str(c)], max_length, **REWARD_TOKENIZATION)
            for p, c in zip(prompts, completions)]


@torch.no_grad()
def score_groups(model: RewardModel, groups: list[TokenizedGroup], batch_size: int = 16) -> list[float]:
    """Reward (mean over heads) at the last completion token of each one-completion group, batched
    by length (little padding), in eval mode on the model's device (autocast there for bf16 weights)."""
    was_training = model.training
    model.eval()
    dtype = next(model.parameters()).dtype
    order = sorted(range(len(groups)), key=lambda i: groups[i].packed_len)
    scores = [0.0] * len(groups)
    try:
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            batch = collate_groups([groups[i] for i in chunk], model.tokenizer.pad_token_id)
            rewards = model.rewards(batch, dtype)  # (b, H)
            for i, value in zip(chunk, rewards.float().mean(dim=1).tolist()):
                scores[i] = float(value)
    finally:
        model.train(was_training)
    return scores


class ModelReward:
    """A reward-model folder as a reward function (interface in rewards/base.py)."""

    def __init__(self, model: RewardModel, max_length: int = 512, batch_size: int = 16,
                 empty_reward: float = 0.0):
        if model.tokenizer is None:
            raise ValueError("ModelReward needs a RewardModel with a tokenizer")
        if max_length < 2:
            raise ValueError(f"max_length must be >= 2, got {max_length}")
        self.model, self.max_length, self.batch_size = model, max_length, batch_size
        self.empty_reward = float(empty_reward)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device | None = None, dtype: str = "fp32",
             max_length: int = 512, batch_size: int = 16, empty_reward: float = 0.0) -> "ModelReward":
        model = RewardModel.load(path, dtype=dtype)
        if device is not None:
            model.to(device)
        return cls(model, max_length, batch_size, empty_reward)

    def __call__(self, prompts: list, completions: list[str], **metadata) -> list[float]:
        groups = tokenize_for_reward(self.model.tokenizer, prompts, completions, self.max_length)
        live = [i for i, g in enumerate(groups) if g is not None]
        out = [self.empty_reward] * len(groups)
        if live:
            for i, score in zip(live, score_groups(self.model, [groups[i] for i in live], self.batch_size)):
                out[i] = score
        return out
