"""Sampling completions as token ids from a policy's own distribution (temperature 1, no top-p/k).

Used where the distribution itself matters, e.g. a Monte-Carlo KL(policy || reference) estimate
needs samples from the policy, not from a sharpened version of it.
"""

from __future__ import annotations

import torch

from rlhfkit.models.logprobs import autocast_context, model_device


@torch.no_grad()
def sample_completions(model, tokenizer, prompt_ids: list[list[int]], max_new_tokens: int, seed: int,
                       batch_size: int = 8, dtype: torch.dtype = torch.float32) -> list[list[int]]:
    """Sampled completions (temperature 1, no top-p: the policy's own distribution), EOS kept."""
    torch.manual_seed(seed)
    device = model_device(model)
    model.eval()
    out = []
    for start in range(0, len(prompt_ids), batch_size):
        chunk = prompt_ids[start : start + batch_size]
        width = max(len(p) for p in chunk)
        ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(p)) + p for p in chunk], device=device)  # left pad
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in chunk], device=device)
        with autocast_context(dtype, device):
            gen = model.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=1.0, top_p=1.0,
                                 top_k=0, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id)
        for row in gen[:, width:].tolist():
            if tokenizer.eos_token_id in row:
                row = row[: row.index(tokenizer.eos_token_id) + 1]
            out.append(row or [tokenizer.eos_token_id])
    return out


