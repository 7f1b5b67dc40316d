"""Per-sequence log-probabilities of completions from one packed forward pass.

What makes it fast on CPU:

- the transformer body runs once per *row* of segments (see ``rlhfkit/packing.py``), so a shared
  prompt is encoded once for both completions of a pair;
- the LM head (49k x 576 for SmolLM2, ~20% of the FLOPs per token) is applied only to the
  hidden states that predict a completion token, never to prompt or padding positions;
- log-probs come from ``logit[target] - logsumexp(logits)`` over chunks of rows, in fp32, so no
  full ``(tokens, vocab)`` fp32 log-softmax is materialised.

``completion_logps`` is the naive equivalent of
``log_softmax(model(ids).logits, -1).gather(-1, next_ids)`` summed over each completion.
"""

from __future__ import annotations

import contextlib

import torch

from rlhfkit.packing import PackedBatch


def model_device(model) -> torch.device:
    return next(model.parameters()).device


def autocast_context(dtype: torch.dtype, device: torch.device | str = "cpu"):
    """bf16 autocast on ``device``'s type (weights stay fp32 masters), or nothing for fp32.

    The device matters: an autocast region for "cpu" does nothing to CUDA kernels, so a bf16 run
    on a GPU would silently compute in fp32 (the bug this signature exists to prevent)."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    device_type = device.type if isinstance(device, torch.device) else torch.device(device).type
    return torch.autocast(device_type=device_type, dtype=dtype)


def additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A boolean mask (True = attend) as the float mask attention adds to its scores: 0 or the
    dtype's lowest value (not -inf, so a row with nothing to attend to gives no NaN)."""
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)


def _mask_for(model, mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    # SDPA takes a boolean mask (True = attend); eager attention adds a float mask to the scores.
    if getattr(model.config, "_attn_implementation", "sdpa") == "sdpa":
        return mask
    return additive_mask(mask, dtype)


def packed_hidden_states(body, batch: PackedBatch, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(B, L, H) last hidden states of a decoder stack (no head) over a batch of segment rows."""
    return body(
        input_ids=batch.input_ids,
        attention_mask=_mask_for(body, batch.attention_mask, dtype),
        position_ids=batch.position_ids,
        use_cache=False,
    ).last_hidden_state


def token_logps(hidden: torch.Tensor, lm_head: torch.nn.Module, targets: torch.Tensor, chunk: int = 1024,
                temperature: float = 1.0) -> torch.Tensor:
    """(N,) log p(target | hidden) for N hidden states (N, H), chunked over N, of the distribution
    softmax(logits / temperature) (the one a sampler at that temperature draws from).

    Naive equivalent: ``(lm_head(hidden).float() / temperature).log_softmax(-1).gather(-1, targets[:, None])``.
    """
    out = []
    for start in range(0, hidden.shape[0], chunk):
        logits = lm_head(hidden[start : start + chunk]).float()  # (n, V)
        if temperature != 1.0:
            logits = logits / temperature
        picked = logits.gather(-1, targets[start : start + chunk, None]).squeeze(-1)  # (n,)
        out.append(picked - torch.logsumexp(logits, dim=-1))
    return torch.cat(out) if out else hidden.new_zeros(0, dtype=torch.float32)


def completion_logps(model, batch: PackedBatch, dtype: torch.dtype = torch.float32,
                     return_tokens: bool = False, temperature: float = 1.0, return_hidden: bool = False):
    """(S,) summed log-probs of every scored segment in ``batch`` (fp32); with ``return_tokens``
    also the (N,) per-token log-probs in ``batch.target_ids`` order, and with ``return_hidden``
    the (N, H) hidden states that predict them (a value head reads these)."""
    device = model_device(model)
    batch = batch.to(device)
    with autocast_context(dtype, device):
        hidden = packed_hidden_states(model.get_decoder(), batch, dtype)  # (B, L, H)
        picked = hidden.reshape(-1, hidden.shape[-1]).index_select(0, batch.source_index)  # (N, H)
        per_token = token_logps(picked, model.get_output_embeddings(), batch.target_ids,
                                temperature=temperature)  # (N,)
    sums = torch.zeros(batch.num_sequences, dtype=torch.float32, device=device)
    sums = sums.index_add(0, batch.sequence_index, per_token)  # (S,)
    if return_hidden:
        return sums, per_token, picked
    return (sums, per_token) if return_tokens else sums
