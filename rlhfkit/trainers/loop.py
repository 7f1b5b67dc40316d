"""The one training loop: every gradient-based trainer (reward model, SFT, DPO family, online RL)
plugs into ``fit`` through a small interface instead of re-implementing the plumbing.

A trainer provides (``Trainer`` protocol):

- ``model`` (its trainable parameters are optimised) and ``cfg`` (a ``TrainConfig``);
- ``total_steps()`` and ``batch_for_step(step)``: the indices of one optimiser step's examples,
  a pure function of (seed, step) so a resumed run sees exactly the batches of the uninterrupted
  one (online trainers may sample here, from RNG state the checkpoint restores);
- ``micro_batches(indices)``: ``[(batch, weight), ...]``; the loop scales each micro-batch's mean
  loss by ``weight / sum(weights)`` so the accumulated gradient equals the full batch's
  (``weight`` = pairs, total pair weight, or scored tokens, whatever the loss averages over);
- ``loss(batch) -> (loss, metrics)``: forward + the pure loss function;
- optionally ``evaluate() -> dict``, ``after_step(record)``, ``state_dict()/load_state_dict()``
  for state the trainer keeps between steps (a KL controller, a rollout buffer), and
  ``tables(record) -> {name: (columns, rows)}`` for the tracker (online RL: the completions).

``fit`` owns seeding, the optimiser (fused AdamW over trainable parameters), the learning-rate
schedule (constant, linear or cosine, each with linear warm-up, exactly as transformers'
``get_*_schedule_with_warmup``), gradient accumulation, clipping, JSONL metrics
(``out/metrics.jsonl``), the progress bar, periodic evaluation and atomic checkpoints
(``out/checkpoint/state.pt``) that resume exactly, and an optional experiment tracker
(``cfg.report_to``, ``rlhfkit.trainers.tracking``) beside the JSONL.

Data parallelism: launched with N > 1 processes (``torchrun`` or ``accelerate launch``, which set
``WORLD_SIZE``), every rank builds the same step's indices (a pure function of (seed, step)) and
takes every N-th of them; each micro-batch's loss is scaled by its weight over the weight of the
whole step summed over ranks, and the gradients are summed over ranks before clipping, so N
processes take exactly the step one process takes on the same global batch
(``batch_size * grad_accum`` examples, whatever N is; N only shrinks each rank's share). Only
rank 0 writes metrics, checkpoints, tracker runs and model folders.

Fully sharded (``cfg.shard == "fsdp"``, or ``accelerate launch`` with an FSDP config): the same
steps, but the trained model is split with FSDP2 (``fully_shard``, one unit per decoder layer plus
the root), so each rank holds 1/N of the parameters, gradients and AdamW moments. FSDP sums the
gradients itself (a reduce-scatter instead of the all-reduce), every rank runs the same number of
forwards (FSDP gathers each layer's weights in a collective), and model folders hold the full
weights gathered on rank 0. Not built for a sharded run, and refused: checkpoints, LoRA and
trainers that call their model outside ``loss`` / ``evaluate`` (online RL samples with it).
"""

from __future__ import annotations

import functools
import json
import math
import os
import random
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

import torch

from rlhfkit.trainers.config import SCHEDULES, TrainConfig
CHECKPOINT = Path("checkpoint") / "state.pt"
# config fields that may change between a run and its resumption
RESUMABLE_CHANGES = {"progress", "resume", "max_steps", "epochs", "save_every", "log_every", "eval_every",
                     "out", "eval_data", "report_to", "shard"}


class Trainer(Protocol):
    model: torch.nn.Module
    cfg: TrainConfig

    def total_steps(self) -> int: ...
    def batch_for_step(self, step: int) -> list[int]: ...
    def micro_batches(self, indices: list[int]) -> list[tuple[Any, float]]: ...
    def loss(self, batch: Any) -> tuple[torch.Tensor, dict]: ...


# --------------------------------------------------------------------------- numerics
def adamw(params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW with the fused kernel (what transformers' Trainer, hence TRL, uses by default on
    torch >= 2.8): one pass over parameters, gradients and moments instead of several."""
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)


def warmup_steps_of(cfg: TrainConfig, total_steps: int) -> int:
    return cfg.warmup_steps if cfg.warmup_steps > 0 else math.ceil(cfg.warmup_ratio * total_steps)


def lr_factor(step: int, total_steps: int, warmup_steps: int, schedule: str) -> float:
    """Multiplier of the base learning rate for optimiser step ``step`` (0-based), equal to
    transformers' ``get_{constant,linear,cosine}_schedule_with_warmup`` lambdas."""
    if step < warmup_steps:
        return step / max(1, warmup_steps)
    if schedule == "constant":
        return 1.0
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    if schedule == "linear":
        return max(0.0, 1.0 - progress)
    if schedule == "cosine":
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))
    raise ValueError(f"unknown lr schedule {schedule!r}; choose {', '.join(SCHEDULES)}")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def trainable_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def steps_for(n_examples: int, cfg: TrainConfig) -> tuple[int, int]:
    """(batches per epoch, total optimiser steps) for ``n_examples`` examples; ``max_steps`` > 0
    overrides ``epochs`` (as in transformers' TrainingArguments), cycling through the data."""
    per_epoch = max(1, math.ceil(n_examples / cfg.global_batch))
    return per_epoch, (cfg.max_steps if cfg.max_steps > 0 else max(1, math.ceil(cfg.epochs * per_epoch)))


# --------------------------------------------------------------------------- data parallelism
def world() -> tuple[int, int]:
    """(rank, world size) of this process: the process group's once joined, else what the
    launcher put in the environment ((0, 1) for a plain ``python`` run)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Rank 0: the one process that writes files (metrics, checkpoints, model folders)."""
    return world()[0] == 0


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true")


def init_distributed() -> int:
    """Join the process group that ``torchrun`` / ``accelerate launch`` describe in the environment
    (``WORLD_SIZE`` > 1); returns the world size (1 when not launched distributed).

    gloo carries CPU tensors (the trainers keep their models where they were loaded) and NCCL CUDA
    ones. DeepSpeed ZeRO needs the model and optimiser handed to its engine, which the loop does
    not do: refused by name rather than silently run as plain data parallelism. (FSDP is the
    loop's own: ``shard_model``.)"""
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 and not dist.is_initialized():
        return 1
    if _env_flag("ACCELERATE_USE_DEEPSPEED"):
        raise RuntimeError("launched with an accelerate DeepSpeed config: the training loop does not hand its "
                           "model to DeepSpeed; for sharding launch with configs/accelerate/fsdp.yaml (or "
                           "shard: fsdp), else configs/accelerate/ddp.yaml or torchrun (see docs/scale-out.md)")
    if not dist.is_initialized():
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if torch.cuda.is_available() and local_rank < torch.cuda.device_count():
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend="cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_world_size()


def barrier() -> None:
    """Wait for every rank (no-op in a single process): after rank 0 writes what others read."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def broadcast_parameters(model: torch.nn.Module) -> None:
    """Start every rank from rank 0's weights (they load the same files, this makes sure)."""
    import torch.distributed as dist

    with torch.no_grad():
        for p in model.parameters():
            dist.broadcast(p.data, 0)


def all_reduce_gradients(params: list[torch.nn.Parameter], bucket_numel: int = 1 << 24) -> None:
    """Sum every parameter's gradient over the ranks, in flat buckets (one call per ~16M numbers).

    A parameter no rank produced a gradient for keeps ``grad=None`` (AdamW then skips it, as in
    one process); one that only some ranks touched counts zeros from the others."""
    import torch.distributed as dist

    touched = torch.tensor([p.grad is not None for p in params], dtype=torch.int32)
    dist.all_reduce(touched)
    grads = []
    for p, count in zip(params, touched.tolist()):
        if count:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            grads.append(p.grad)
    buckets: dict[tuple, list[list[torch.Tensor]]] = {}
    filled: dict[tuple, int] = {}
    for g in grads:  # one flat buffer per (device, dtype), cut at bucket_numel
        key = (g.device, g.dtype)
        runs = buckets.setdefault(key, [[]])
        if runs[-1] and filled[key] + g.numel() > bucket_numel:
            runs.append([])
            filled[key] = 0
        runs[-1].append(g)
        filled[key] = filled.get(key, 0) + g.numel()
    for runs in buckets.values():
        for run in runs:
            flat = torch.cat([g.reshape(-1) for g in run])
            dist.all_reduce(flat)
            offset = 0
            for g in run:
                g.copy_(flat[offset : offset + g.numel()].view_as(g))
                offset += g.numel()


def _sum_over_ranks(value: float, op: str = "SUM") -> float:
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t, op=getattr(dist.ReduceOp, op))
    return float(t.item())


def _sum_metrics_over_ranks(sums: dict[str, float]) -> dict[str, float]:
    """Each rank's weighted metric sums (already divided by the global weight) added up; a rank
    without examples this step contributes none, so keys are merged rather than assumed equal."""
    import torch.distributed as dist

    gathered: list[dict] = [{} for _ in range(dist.get_world_size())]
    dist.all_gather_object(gathered, sums)
    total: dict[str, float] = {}
    for part in gathered:
        for key, value in part.items():
            total[key] = total.get(key, 0.0) + value
    return total


# --------------------------------------------------------------------------- fully sharded
def sharding(cfg: TrainConfig) -> str:
    """"fsdp" when the run asks for it (``cfg.shard``, or the ``ACCELERATE_USE_FSDP`` that
    ``accelerate launch`` sets from an FSDP config) and has more than one process, else "none"."""
    wanted = "fsdp" if _env_flag("ACCELERATE_USE_FSDP") else cfg.shard
    return wanted if world()[1] > 1 else "none"


def is_sharded(model: torch.nn.Module) -> bool:
    return hasattr(model, "run_as_forward")


def shard_model(model: torch.nn.Module) -> None:
    """FSDP2 over all ranks: one unit per decoder layer (the class named in accelerate's
    ``FSDP_TRANSFORMER_CLS_TO_WRAP``, else the model's own ``_no_split_modules``) and
    the root for the rest (embeddings, final norm, heads: a tied LM head stays with its embedding).

    The trainers call parts of the model (the decoder stack, the LM or reward head), never the
    root's ``forward``, which is where FSDP gathers the root's weights: ``run_as_forward(fn, ...)``
    (``register_fsdp_forward_method``) runs ``fn`` as that forward. Gradients are summed, not
    averaged, over ranks: the loop's loss weights already divide by the whole step's weight."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import FSDPModule, fully_shard, register_fsdp_forward_method

    named = os.environ.get("FSDP_TRANSFORMER_CLS_TO_WRAP", "")
    names = {n.strip() for n in named.split(",") if n.strip()}
    names = names or {n for m in model.modules() for n in (getattr(m, "_no_split_modules", None) or ())}
    layers = [m for m in model.modules() if type(m).__name__ in names]
    if not layers:
        found = sorted({type(m).__name__ for m in model.modules()})
        raise ValueError(f"FSDP: no layer of class {', '.join(sorted(names)) or '(none named)'} in "
                         f"{type(model).__name__} (fsdp_transformer_layer_cls_to_wrap; it has {', '.join(found)})")
    mesh = init_device_mesh(next(model.parameters()).device.type, (world()[1],))
    for layer in layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    for module in model.modules():
        if isinstance(module, FSDPModule):
            module.set_gradient_divide_factor(1.0)
            module.set_force_sum_reduction_for_comms(True)  # a plain SUM: gloo has no PREMUL_SUM
    model.run_as_forward = lambda fn, *args, **kwargs: fn(*args, **kwargs)
    register_fsdp_forward_method(model, "run_as_forward")


def gathered_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor] | None:
    """A sharded model's full state dict, on the CPU of rank 0 (empty elsewhere); every rank must
    call it (the weights are gathered in collectives). None for an unsharded model."""
    if not is_sharded(model):
        return None
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


# --------------------------------------------------------------------------- checkpoints
def save_checkpoint(path: Path, model, optimizer, state: dict) -> None:
    """Write trainable weights, optimiser state, loop position and RNG state atomically."""
    from rlhfkit.data.atomic import atomic_write

    payload = {
        "params": {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad},
        "optimizer": optimizer.state_dict(),
        "state": state,
        "rng": {"torch": torch.get_rng_state(), "python": random.getstate()},
    }
    with atomic_write(path, "wb") as fh:
        torch.save(payload, fh)


def load_checkpoint(path: Path, model, optimizer) -> dict:
    payload = torch.load(path, map_location="cpu", weights_only=False)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in payload["params"].items():
            params[name].copy_(value)
    optimizer.load_state_dict(payload["optimizer"])
    torch.set_rng_state(payload["rng"]["torch"])
    random.setstate(payload["rng"]["python"])
    return payload["state"]


def _check_same_run(saved: dict, cfg: TrainConfig, path: Path) -> None:
    now = asdict(cfg)
    changed = sorted(k for k in now if k not in RESUMABLE_CHANGES and saved.get(k, now[k]) != now[k])
    if changed:
        raise ValueError(f"{path}: this checkpoint was written with other settings ({', '.join(changed)}); "
                         "use another --out, or --no-resume to start over")


def save_hf_folder(model, tokenizer, out: Path) -> Path:
    """Save a plain HF folder (safetensors); LoRA adapters are merged into a copy of the weights
    first. Written to a temporary sibling and moved in place, so a crash leaves no half folder."""
    from rlhfkit.data.atomic import atomic_dir

    weights = gathered_state_dict(model)  # sharded: every rank sends its shards to rank 0
    if not is_main_process():  # rank 0 writes; the others wait until the folder is there
        barrier()
        return Path(out)
    if hasattr(model, "merge_and_unload"):
        import copy

        model = copy.deepcopy(model).merge_and_unload()
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True, **({"state_dict": weights} if weights is not None else {}))
        tokenizer.save_pretrained(tmp)
    barrier()
    return Path(out)


def write_config(folder: Path, name: str, cfg) -> None:
    from rlhfkit.data.atomic import atomic_write

    if is_main_process():
        with atomic_write(Path(folder) / name) as fh:
            fh.write(json.dumps(asdict(cfg), indent=2, default=str) + "\n")


# --------------------------------------------------------------------------- the loop
def _append_jsonl(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop metric lines of steps after the checkpoint: a resumed run writes them again."""
    if not path.exists():
        return
    from rlhfkit.data.atomic import atomic_write

    lines = path.read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if line.strip() and json.loads(line).get("step", 0) <= step]
    if len(kept) != len(lines):
        with atomic_write(path) as fh:
            fh.writelines(line + "\n" for line in kept)


def train_step(trainer: Trainer, optimizer, step: int) -> dict:
    """One optimiser step: batch -> micro-batches -> loss -> backward (accumulated) -> clip -> step.
    Launched distributed, this rank takes every N-th example of the step and the gradients and
    metrics are summed over ranks (module docstring)."""
    cfg, model = trainer.cfg, trainer.model
    t0 = time.perf_counter()
    total = trainer.total_steps()
    for group in optimizer.param_groups:
        group["lr"] = cfg.lr * lr_factor(step, total, warmup_steps_of(cfg, total), cfg.lr_schedule)
    model.train()
    optimizer.zero_grad(set_to_none=True)
    rank, size = world()
    if size > 1:
        init_distributed()
    indices = trainer.batch_for_step(step)
    parts = trainer.micro_batches(indices[rank::size])  # batch (this rank's share)
    denominator = sum(weight for _, weight in parts)
    if size > 1:
        denominator = _sum_over_ranks(denominator)  # the weight of the whole step, every rank's
    sharded = is_sharded(model)
    if sharded:  # FSDP gathers weights in collectives: every rank runs as many forwards, padded with weight 0
        filler = parts[-1][0] if parts else trainer.micro_batches(indices[:1])[0][0]
        parts += [(filler, 0.0)] * (int(_sum_over_ranks(len(parts), "MAX")) - len(parts))
    sums: dict[str, float] = {}
    for batch, weight in parts:
        loss, metrics = model.run_as_forward(trainer.loss, batch) if sharded else trainer.loss(batch)  # forward + loss
        share = weight / denominator
        (loss * share).backward()  # accumulate: the step's loss is the weighted mean over its examples
        for key, value in {"loss": loss.detach(), **metrics}.items():
            sums[key] = sums.get(key, 0.0) + float(value) * share
    params = trainable_parameters(model)
    if size > 1:
        if not sharded:  # (FSDP has summed them already, each rank keeping its shard)
            all_reduce_gradients(params)  # every rank now holds the gradient of the whole step
        sums = _sum_metrics_over_ranks(sums)
    norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm if cfg.max_grad_norm > 0 else float("inf"))
    norm = norm.full_tensor() if hasattr(norm, "full_tensor") else norm  # sharded: a replicated DTensor
    optimizer.step()  # step
    return {"step": step + 1, **sums, "grad_norm": float(norm), "lr": optimizer.param_groups[0]["lr"],
            "s_per_step": time.perf_counter() - t0}


def _check_shardable(trainer: Trainer, ckpt: Path | None) -> None:
    """What the FSDP path is not built (and tested) for, refused before any work."""
    cfg, what = trainer.cfg, f"{getattr(trainer, 'name', type(trainer).__name__)} with FSDP"
    if not getattr(trainer, "supports_fsdp", False):
        raise RuntimeError(f"{what}: not built for this trainer (it calls its model outside the loss, "
                           "e.g. to sample); launch it without sharding (docs/scale-out.md)")
    if cfg.lora_r:
        raise RuntimeError(f"{what}: LoRA under FSDP is not built; use lora_r 0 or launch without sharding")
    if cfg.save_every or (cfg.resume and ckpt is not None and ckpt.exists()):
        raise RuntimeError(f"{what}: checkpoints of a sharded run are not built; use save_every 0 "
                           f"(and --no-resume or another --out if {ckpt} exists)")


def fit(trainer: Trainer, out: Path | None, stop_after: int | None = None, description: str = "training") -> list[dict]:
    """Run ``trainer`` to ``total_steps()`` (or stop after step ``stop_after``, as if killed there),
    resuming from ``out/checkpoint`` when ``cfg.resume`` and one exists. Returns this call's records
    (the same on every rank when launched distributed)."""
    from rlhfkit.progress import progress
    from rlhfkit.trainers.tracking import open_tracker

    cfg = trainer.cfg
    ckpt = Path(out) / CHECKPOINT if out else None
    if init_distributed() > 1 and not is_sharded(trainer.model):
        broadcast_parameters(trainer.model)
        if sharding(cfg) == "fsdp":
            _check_shardable(trainer, ckpt)
            shard_model(trainer.model)  # before the optimiser: it steps the shards
            if hasattr(trainer, "evaluate"):  # also when called after fit (final evaluation)
                trainer.evaluate = functools.partial(trainer.model.run_as_forward, trainer.evaluate)
    main = is_main_process()
    optimizer = adamw(trainable_parameters(trainer.model), cfg.lr, cfg.weight_decay)
    step, history = 0, getattr(trainer, "history", [])
    if cfg.resume and ckpt is not None and ckpt.exists():
        state = load_checkpoint(ckpt, trainer.model, optimizer)
        _check_same_run(state.get("config", {}), cfg, ckpt)
        step = state["step"]
        history[:] = state.get("history", [])
        if main:
            _truncate_metrics(Path(out) / "metrics.jsonl", step)
        if hasattr(trainer, "load_state_dict") and "trainer" in state:
            trainer.load_state_dict(state["trainer"])
    trainer.step = step
    total = trainer.total_steps()
    stop = min(total, stop_after) if stop_after is not None else total
    new: list[dict] = []
    tracker = open_tracker(cfg, out) if main else None
    try:
        with progress(total, description, enabled=cfg.progress and main, start=step) as advance:
            while step < stop:
                record = train_step(trainer, optimizer, step)
                step = trainer.step = record["step"]
                if hasattr(trainer, "after_step"):
                    trainer.after_step(record)
                evaluated = bool(cfg.eval_every and step % cfg.eval_every == 0 and hasattr(trainer, "evaluate"))
                if evaluated:
                    record.update({f"eval_{k}": v for k, v in trainer.evaluate().items() if isinstance(v, (int, float))})
                history.append(record)
                new.append(record)
                logged = step % max(1, cfg.log_every) == 0 or step == total or evaluated
                if main and out and logged:
                    _append_jsonl(Path(out) / "metrics.jsonl", record)
                if tracker is not None:  # the same lines, plus the trainer's tables (completions)
                    tables = trainer.tables(record) if hasattr(trainer, "tables") else {}
                    tracker.log(record if logged else None, tables, step)
                advance(record)
                if main and ckpt is not None and cfg.save_every and step % cfg.save_every == 0:
                    extra = trainer.state_dict() if hasattr(trainer, "state_dict") else None
                    save_checkpoint(ckpt, trainer.model, optimizer, {
                        "step": step, "history": history, "config": asdict(cfg),
                        **({"trainer": extra} if extra is not None else {})})
    finally:
        if tracker is not None:
            tracker.close()
    return new
