"""DPO, reward-model (and by hand any other) runs of two optimiser steps on a tiny model, for
``test_distributed.py``: started by ``torchrun --nproc_per_node 2`` (each rank trains on its share
of every step) or imported and run in one process (the reference). Rank 0 saves the parameters.

A name ending in ``:fsdp`` runs the same trainer with ``shard: fsdp`` (the model sharded over the
ranks) and saves its model folder beside OUT.pt (``OUT.dpo-fsdp/``, ...); its parameters are
gathered from the shards before they are compared.

Usage: python -m torch.distributed.run --standalone --nproc_per_node 2 distributed_worker.py MODEL_DIR OUT.pt
[TRAINER[:fsdp] ...] (default: dpo reward dpo:fsdp reward:fsdp sft:fsdp; any registered name works, e.g. sft grpo)
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

torch.set_num_threads(1)  # two ranks on a shared 2-core machine


ONLINE_NAMES = ("grpo", "rloo", "ppo", "raft")
# online RL (not in the CI test; run by hand with extra trainer names): 8 prompts x 4 samples a step
ONLINE = {"reward": "tests.toy_data:lowercase_share", "group_size": 4, "max_new_tokens": 6, "batch_size": 2,
          "grad_accum": 4}
DEFAULT = ("dpo", "reward", "dpo:fsdp", "reward:fsdp", "sft:fsdp")


def full_parameters(model: torch.nn.Module) -> torch.Tensor:
    """All parameters, flattened in ``parameters()`` order; a sharded one is gathered first
    (a collective: every rank calls this)."""
    return torch.cat([(p.full_tensor() if hasattr(p, "full_tensor") else p).detach().flatten()
                      for p in model.parameters()])


def run(model_dir: str, names: tuple[str, ...] = ("dpo", "reward"), save_to: str | None = None) -> dict:
    from rlhfkit.trainers import loop
    from rlhfkit.trainers.registry import TRAINERS
    from tests.toy_data import polite_pairs

    out = {"world_size": loop.world()[1]}
    for name in names:
        trainer_name, _, shard = name.partition(":")
        entry = TRAINERS[trainer_name]
        # global batch 8 = 2 x 4 over 13 pairs: one step of 8, one of 5. One process runs 4 (then 3)
        # micro-batches of at most 2; of 2 ranks each runs 2, then rank 0 two (3 pairs) and rank 1
        # one (2 pairs), which a sharded rank 1 pads with a weight-0 forward. The pair weights differ
        # (0.5/1/2), so each rank's share of the step's weight differs too.
        settings = dict(model=model_dir, lr=1e-3, lr_schedule="constant", warmup_ratio=0.0, max_grad_norm=1.0,
                        batch_size=2, grad_accum=4, max_steps=2, max_length=64, progress=False, seed=0,
                        shard=shard or "none", eval_every=2 if trainer_name == "reward" else 0)
        cfg = entry.config(**{**settings, **(ONLINE if trainer_name in ONLINE_NAMES else {})})
        trainer = entry.build(cfg, polite_pairs(13), None)
        if trainer_name == "reward":  # held-out pairs, evaluated by the loop after step 2 and after it
            from rlhfkit.packing import tokenize_reward_pairs

            trainer.eval_tok = tokenize_reward_pairs(trainer.model.tokenizer, polite_pairs(6, seed=1), cfg.max_length)
        initial = full_parameters(trainer.model)
        trainer.train()
        out[name] = {"params": full_parameters(trainer.model),
                     "initial": initial,
                     "losses": [h["loss"] for h in trainer.history],
                     "grad_norms": [h["grad_norm"] for h in trainer.history],
                     "sharded": loop.is_sharded(trainer.model)}
        if trainer_name == "reward":
            out[name]["eval_margins"] = [trainer.history[-1]["eval_mean_margin"], trainer.evaluate(n_boot=10)["mean_margin"]]
        if shard and save_to:
            folder = Path(f"{save_to}.{trainer_name}-{shard}")
            if trainer_name == "reward":
                trainer.out = folder
                trainer.save()
            else:
                trainer.save(folder)
            out[name]["folder"] = str(folder)
    return out


if __name__ == "__main__":
    import torch.distributed as dist

    result = run(sys.argv[1], tuple(sys.argv[3:]) or DEFAULT, save_to=sys.argv[2])
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
