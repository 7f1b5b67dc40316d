"""Pieces every gradient-based trainer here shares: optimiser and schedule, bf16 grid snapping,
checkpoints that resume exactly, per-step metrics (JSONL + progress bar), HF-folder export."""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

import torch


# --------------------------------------------------------------------------- numerics
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


def adamw(params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW with the fused kernel (what transformers' Trainer, hence TRL, uses by default on
    torch >= 2.8): one pass over parameters, gradients and moments instead of several."""
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)


def lr_factor(step: int, total_steps: int, warmup_steps: int, schedule: str) -> float:
    """Multiplier of the base learning rate at optimiser step ``step`` (0-based)."""
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    if schedule == "linear":
        span = max(1, total_steps - warmup_steps)
        return max(0.0, 1.0 - (step - warmup_steps) / span)
    raise ValueError(f"unknown lr schedule {schedule!r}; choose constant or linear")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


# --------------------------------------------------------------------------- checkpoints
def save_checkpoint(path: Path, model, optimizer, state: dict) -> None:
    """Write trainable weights, optimiser state, loop position and RNG state atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "model": {k: v for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "state": state,
        "rng": {"torch": torch.get_rng_state(), "python": random.getstate()},
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_checkpoint(path: Path, model, optimizer) -> dict:
    payload = torch.load(path, map_location="cpu", weights_only=False)
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    torch.set_rng_state(payload["rng"]["torch"])
    random.setstate(payload["rng"]["python"])
    return payload["state"]


def save_hf_folder(model, tokenizer, out: Path) -> Path:
    """Save a plain HF folder (safetensors); LoRA adapters are merged into the weights first.
    Written to a temporary sibling and moved in place, so a crash leaves no half folder."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if out.exists():
            for child in tmp.iterdir():
                target = out / child.name
                if target.is_dir():
                    shutil.rmtree(target)
                os.replace(child, target)
        else:
            os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


# --------------------------------------------------------------------------- logging
class StepLogger:
    """Appends one JSON line per optimiser step and drives a rich progress bar."""

    def __init__(self, path: Path | None, total: int, description: str, show: bool = True):
        self.path = Path(path) if path else None
        self.start = time.perf_counter()
        self.progress = None
        if show:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeRemainingColumn(), TextColumn("{task.fields[info]}"), transient=False)
            self.task = self.progress.add_task(description, total=total, info="")
            self.progress.start()

    def log(self, record: dict, advance: bool = True) -> None:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")
        if self.progress is not None:
            info = " ".join(f"{k}={v:.4g}" for k, v in record.items() if k in ("loss", "rewards/accuracy", "s_per_step"))
            self.progress.update(self.task, advance=1 if advance else 0, info=info)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
