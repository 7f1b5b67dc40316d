"""Numerics of weights shared by trainers and evaluation: bf16-grid snapping."""

from __future__ import annotations

import torch


@torch.no_grad()
def snap_to_bf16_grid(model: torch.nn.Module) -> int:
    """Round every floating parameter to the nearest bf16 value (kept in its fp32 storage).

    Why: under bf16 autocast each fp32 master weight is rounded to bf16 on every forward. A
    weight lying exactly halfway between two bf16 values (about 8% of GGUF-dequantised SmolLM2
    weights) rounds to the even neighbour; the first optimiser step, however tiny, moves it off
    the midpoint and it then rounds to the *other* neighbour. All of them flip at once and the
    policy/reference log-prob gap jumps by ~9 nats that no gradient asked for. Snapping once,
    before the reference log-probs are taken, makes the fp32 masters equal to what bf16 sees,
    so small updates move the bf16 view smoothly. Returns the number of weights changed.
    """
    changed = 0
    for p in model.parameters():
        if p.is_floating_point() and p.dtype != torch.bfloat16:
            snapped = p.to(torch.bfloat16).to(p.dtype)
            changed += int((snapped != p).sum())
            p.copy_(snapped)
    return changed
