"""Per-judgement weights (annotator reliability, label confidence) shared by every loss."""

from __future__ import annotations

import torch


def weighted_mean(per_item: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """``sum(w_i * l_i) / sum(w_i)``; ``weights=None`` is the plain mean. Shapes ``(B,)``."""
    if weights is None:
        return per_item.mean()
    weights = weights.to(per_item.dtype)
    if weights.shape != per_item.shape:
        raise ValueError(f"weights shape {tuple(weights.shape)} != per-item shape {tuple(per_item.shape)}")
    if (weights < 0).any():
        raise ValueError("weights must be >= 0")
    total = weights.sum()
    if total <= 0:
        raise ValueError("weights sum to zero: no judgement carries any weight")
    return (weights * per_item).sum() / total
