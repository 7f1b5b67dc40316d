"""One DPO run and one reward-model run of two optimiser steps on a tiny model, for
``test_distributed.py``: started by ``torchrun --nproc_per_node 2`` (each rank trains on its share
of every step) or imported and run in one process (the reference). Rank 0 saves the parameters.

Usage: python -m torch.distributed.run --standalone --nproc_per_node 2 distributed_worker.py MODEL_DIR OUT.pt
[TRAINER ...] (default: dpo reward; any registered name works, e.g. sft grpo)
"""

from __future__ import annotations

import sys

import torch

torch.set_num_threads(1)  # two ranks on a shared 2-core machine


ONLINE_NAMES = ("grpo", "rloo", "ppo", "raft")
# online RL (not in the CI test; run by hand with extra trainer names): 8 prompts x 4 samples a step
ONLINE = {"reward": "tests.toy_data:lowercase_share", "group_size": 4, "max_new_tokens": 6, "batch_size": 2,
          "grad_accum": 4}


def run(model_dir: str, names: tuple[str, ...] = ("dpo", "reward")) -> dict:
    from rlhfkit.trainers import loop
    from rlhfkit.trainers.registry import TRAINERS
    from tests.toy_data import polite_pairs

    out = {"world_size": loop.world()[1]}
    for name in names:
        entry = TRAINERS[name]
        # global batch 8 = 4 x 2: one process runs 2 micro-batches of 4, each of 2 ranks 1 of 4;
        # the pair weights differ (0.5/1/2), so each rank's share of the step's weight differs too
        settings = dict(model=model_dir, lr=1e-3, lr_schedule="constant", warmup_ratio=0.0, max_grad_norm=1.0,
                        batch_size=4, grad_accum=2, max_steps=2, max_length=64, progress=False, seed=0)
        cfg = entry.config(**{**settings, **(ONLINE if name in ONLINE_NAMES else {})})
        trainer = entry.build(cfg, polite_pairs(16), None)
        initial = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
        trainer.train()
        out[name] = {"params": torch.cat([p.detach().flatten() for p in trainer.model.parameters()]),
                     "initial": initial,
                     "losses": [h["loss"] for h in trainer.history],
                     "grad_norms": [h["grad_norm"] for h in trainer.history]}
    return out


if __name__ == "__main__":
    import torch.distributed as dist

    result = run(sys.argv[1], tuple(sys.argv[3:]) or ("dpo", "reward"))
    result["world_size_after"] = dist.get_world_size() if dist.is_initialized() else 1
    if dist.is_initialized() and dist.get_rank() == 1:
        # the ranks must agree, parameter for parameter: rank 1 sends its copies to rank 0
        for name in [k for k in result if isinstance(result[k], dict)]:
            dist.send(result[name]["params"], 0)
    if not dist.is_initialized() or dist.get_rank() == 0:
        if dist.is_initialized():
            for name in [k for k in result if isinstance(result[k], dict)]:
                other = torch.empty_like(result[name]["params"])
                dist.recv(other, 1)
                result[f"rank1_{name}_params"] = other
        torch.save(result, sys.argv[2])
    if dist.is_initialized():
        dist.destroy_process_group()
