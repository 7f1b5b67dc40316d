"""Scoring (prompt, completion) with a trained reward model, tokenised as the reward trainer does.

The reward model only gives meaningful scores on sequences built the way it was trained, so
``tokenize_for_reward`` follows the rule of the reward trainer (trainers/batching.py, not
imported here: rewards sit below trainers in the layering):

- prompt text: a plain-text prompt as it is; chat messages through the tokenizer's chat
  template with the generation prompt opened (``add_generation_prompt=True``);
- prompt tokens: ``tokenizer(text, add_special_tokens=True)``; completion tokens:
  ``tokenizer(completion, add_special_tokens=False)``, no EOS appended;
- truncation to L = ``max_length``: the completion keeps at most L - min(len(prompt), L // 4)
  tokens (cut from the right), then the prompt is cut from the LEFT to fit the rest, so the
  end of the prompt and the start of the completion survive and the sequence has <= L tokens.

The reward is the model's output at the last completion token (``RewardModel.forward`` on
right-padded rows), averaged over heads when the model has several. An empty completion
(zero tokens) is not run through the model and gets ``empty_reward``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from rlhfkit.models.reward_model import RewardModel


def _prompt_text(prompt, tokenizer) -> str:
    if isinstance(prompt, str):
        return prompt
    messages = [m if isinstance(m, dict) else m.model_dump() for m in prompt]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def truncate_prompt_completion(prompt_ids: list[int], completion_ids: list[int],
                               max_length: int) -> tuple[list[int], list[int]]:
    """Cut the completion from the right and the prompt from the left (rule in the module doc)."""
    keep_prompt = min(len(prompt_ids), max_length // 4)
    completion_ids = completion_ids[: max_length - keep_prompt]
    room = max_length - len(completion_ids)
    prompt_ids = prompt_ids[len(prompt_ids) - room:] if len(prompt_ids) > room else prompt_ids
    return prompt_ids, completion_ids


def tokenize_for_reward(tokenizer, prompts: Sequence, completions: Sequence[str],
                        max_length: int) -> list[tuple[list[int], list[int]]]:
    """(prompt_ids, completion_ids) per sample, exactly as the reward trainer builds a pair."""
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
    if not prompts:
        return []
    texts = [_prompt_text(p, tokenizer) for p in prompts]
    prompt_ids = tokenizer(texts, add_special_tokens=True)["input_ids"]
    completion_ids = tokenizer([str(c) for c in completions], add_special_tokens=False)["input_ids"]
    return [truncate_prompt_completion(list(p), list(c), max_length) for p, c in zip(prompt_ids, completion_ids)]


@torch.no_grad()
def score_sequences(model: RewardModel, sequences: list[list[int]], pad_id: int,
                    batch_size: int = 16) -> list[float]:
    """Reward (mean over heads) at the last token of each non-empty token sequence.

    Rows are sorted by length so each batch pads little, right-padded, and run in eval mode on
    the model's device under autocast for that device type when the weights are not fp32.
    """
    if any(not s for s in sequences):
        raise ValueError("score_sequences: every sequence needs at least one token")
    was_training = model.training
    model.eval()
    param = next(model.parameters())
    device, dtype = param.device, param.dtype
    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))
    scores = [0.0] * len(sequences)
    try:
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            width = len(sequences[chunk[0]])
            input_ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)  # (B, T)
            attention_mask = torch.zeros((len(chunk), width), dtype=torch.long)  # (B, T)
            for row, i in enumerate(chunk):
                input_ids[row, : len(sequences[i])] = torch.tensor(sequences[i])
                attention_mask[row, : len(sequences[i])] = 1
            last_index = attention_mask.sum(dim=1) - 1  # (B,)
            with torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype != torch.float32):
                rewards = model(input_ids.to(device), attention_mask.to(device), last_index.to(device))  # (B, H)
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
        tokenizer = self.model.tokenizer
        pairs = tokenize_for_reward(tokenizer, prompts, completions, self.max_length)
        live = [i for i, (_, c) in enumerate(pairs) if c]
        out = [self.empty_reward] * len(pairs)
        if live:
            scores = score_sequences(self.model, [pairs[i][0] + pairs[i][1] for i in live],
                                     tokenizer.pad_token_id, self.batch_size)
            for i, s in zip(live, scores):
                out[i] = s
        return out
