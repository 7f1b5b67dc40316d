"""The order in which a trainer visits its examples: length-grouped batches, shared by every trainer."""

from __future__ import annotations

import torch


def length_grouped_batches(lengths: list[int], batch_size: int, seed: int, epoch: int,
                           window: int = 16, shuffle: bool = True) -> list[list[int]]:
    """Batches of indices with similar lengths, in an order that depends only on (seed, epoch).

    The data are shuffled, cut into windows of ``window`` batches, each window sorted by length
    and cut into batches, and the full batches shuffled: padding stays small while batch
    contents still vary from epoch to epoch. Deterministic, so a resumed run sees the same batches.

    At most one batch is short (the remainder of the last window). It always comes last, as in a
    plain ``DataLoader(drop_last=False)``: a one-pair batch in the middle of a run would be a
    4x-weighted noisy step at a random time, and a peer trainer fed our order in fixed-size
    batches would silently see different batches from that point on.
    """
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(len(lengths), generator=g).tolist() if shuffle else list(range(len(lengths)))
    span = batch_size * max(1, window)
    batches = []
    for start in range(0, len(order), span):
        chunk = sorted(order[start : start + span], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    full = [b for b in batches if len(b) == batch_size]
    short = [b for b in batches if len(b) < batch_size]
    if shuffle:
        full = [full[i] for i in torch.randperm(len(full), generator=g).tolist()]
    return full + short
