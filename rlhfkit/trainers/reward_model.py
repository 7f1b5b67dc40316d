"""Train a reward model on preference pairs with the Bradley-Terry loss.

Phases of one optimiser step: batch -> micro-batches -> rewards -> loss -> backward -> step -> log.

- Data order is a pure function of (seed, epoch): length-bucketed batches (little padding) in a
  seeded random order, so a resumed run sees exactly the batches the uninterrupted run saw.
- One optimiser batch of ``batch_size * grad_accum`` pairs is split into ``grad_accum``
  micro-batches; each micro-batch loss (a weighted mean) is scaled by its share of the batch's
  total weight, so the accumulated gradient equals the full batch's gradient (1x8 == 8x1).
- ``packing``: each pair is one row [prompt, chosen, rejected] (see trainers/batching.py), so
  the shared prompt is computed once; benchmarks/reward_model.py measures it against 2 rows.
- ``dtype="bf16"``: bf16 autocast, weights and optimiser state stay fp32.
- Checkpoints (``out/checkpoint``) hold the trainable weights, optimiser, scheduler, step, RNG
  states and the loss log; ``resume=True`` continues from there and reproduces the losses.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from rlhfkit.losses.reward import bradley_terry_loss


def _f(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass
class RewardTrainConfig:
    data: str = _f("", "training pairs: any format rlhfkit.data.load_pairs reads")
    eval_data: str | None = _f(None, "held-out pairs for periodic and final evaluation")
    model: str = _f("smollm2-135m", "backbone: alias, HF folder, .gguf file or hub id")
    out: str = _f("runs/rm", "output folder (a transformers-loadable model)")
    max_length: int = _f(512, "tokens per prompt+response; prompts are cut from the left")
    batch_size: int = _f(8, "pairs per micro-batch")
    grad_accum: int = _f(1, "micro-batches per optimiser step")
    lr: float = _f(2e-5, "peak learning rate (AdamW)")
    weight_decay: float = _f(0.0, "AdamW weight decay")
    epochs: float = _f(1.0, "passes over the data (ignored when max_steps > 0)")
    max_steps: int = _f(0, "optimiser steps; 0 = from epochs")
    warmup_ratio: float = _f(0.05, "share of steps with linear warm-up")
    scheduler: str = _f("cosine", "learning-rate decay after warm-up: cosine, linear or constant")
    grad_clip: float = _f(1.0, "max gradient norm; 0 = off")
    dtype: str = _f("fp32", "fp32, or bf16 (autocast; weights stay fp32)")
    packing: bool = _f(True, "run [prompt, chosen, rejected] as one row (prompt computed once)")
    n_heads: int = _f(1, "reward heads on the shared backbone (an ensemble when > 1)")
    lora_r: int = _f(0, "LoRA rank; 0 = full fine-tuning")
    lora_alpha: int = _f(32, "LoRA alpha")
    freeze_layers: int = _f(0, "freeze the embeddings and the first N decoder layers")
    label_smoothing: float = _f(0.0, "Bradley-Terry label smoothing in [0, 0.5]")
    center_rewards_coef: float = _f(0.0, "penalty on (r_c + r_r)^2 keeping rewards centred")
    eval_every: int = _f(0, "evaluate every N steps; 0 = only at the end")
    save_every: int = _f(0, "checkpoint every N steps; 0 = never (final model is always saved)")
    log_every: int = _f(10, "log metrics every N steps")
    eval_batch_size: int = _f(16, "pairs per evaluation batch")
    seed: int = _f(0, "seed for head initialisation and data order")
    resume: bool = _f(False, "continue from out/checkpoint if present")
    progress: bool = _f(True, "show a progress bar")


def _seed_all(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def _lr_lambda(cfg: RewardTrainConfig, total: int):
    warm = int(cfg.warmup_ratio * total)

    def fn(step: int) -> float:
        if step < warm:
            return (step + 1) / (warm + 1)
        if cfg.scheduler == "constant":
            return 1.0
        frac = (step - warm) / max(1, total - warm)
        return 0.5 * (1 + math.cos(math.pi * frac)) if cfg.scheduler == "cosine" else 1.0 - frac

    return fn


class RewardModelTrainer:
    """setup() -> train() -> save(); ``train`` may stop early via ``stop_after`` (tests)."""

    def __init__(self, cfg: RewardTrainConfig, train_pairs=None, eval_pairs=None, model=None):
        self.cfg = cfg
        self.out = Path(cfg.out)
        self._train_pairs, self._eval_pairs, self.model = train_pairs, eval_pairs, model
        self.step = 0
        self.history: list[dict] = []

    # -- setup ----------------------------------------------------------------------------------
    def setup(self) -> "RewardModelTrainer":
        from rlhfkit.data import load_pairs
        from rlhfkit.models.reward_model import RewardModel
        from rlhfkit.trainers.batching import tokenize_pairs

        cfg = self.cfg
        if cfg.scheduler not in ("cosine", "linear", "constant"):
            raise ValueError(f"unknown scheduler {cfg.scheduler!r}")
        if cfg.dtype not in ("fp32", "bf16"):
            raise ValueError(f"unknown dtype {cfg.dtype!r}; choose fp32 or bf16")
        _seed_all(cfg.seed)
        if self.model is None:
            self.model = RewardModel.from_backbone(cfg.model, n_heads=cfg.n_heads, seed=cfg.seed)
        self._prepare_model()
        pairs = self._train_pairs if self._train_pairs is not None else load_pairs(cfg.data)
        if not pairs:
            raise ValueError(f"{cfg.data}: no training pairs")
        self.train_tok = tokenize_pairs(pairs, self.model.tokenizer, cfg.max_length)
        eval_pairs = self._eval_pairs
        if eval_pairs is None and cfg.eval_data:
            eval_pairs = load_pairs(cfg.eval_data)
        self.eval_tok = tokenize_pairs(eval_pairs, self.model.tokenizer, cfg.max_length) if eval_pairs else None
        self.batches_per_epoch = math.ceil(len(self.train_tok) / (cfg.batch_size * cfg.grad_accum))
        self.total_steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * self.batches_per_epoch))
        params = [p for p in self.model.parameters() if p.requires_grad]
        # fused AdamW: one kernel over all tensors (the update of 135M fp32 weights is not free on CPU)
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, _lr_lambda(cfg, self.total_steps))
        if cfg.resume and (self.out / "checkpoint" / "state.pt").exists():
            self._load_checkpoint()
        return self

    def _prepare_model(self) -> None:
        cfg, model = self.cfg, self.model
        for module in model.modules():  # dropout off, as TRL's RewardTrainer does by default
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        if cfg.freeze_layers:
            backbone = model.backbone
            backbone.embed_tokens.requires_grad_(False)
            for layer in backbone.layers[: cfg.freeze_layers]:
                layer.requires_grad_(False)
        if cfg.lora_r:
            model.add_lora(r=cfg.lora_r, alpha=cfg.lora_alpha)
        model.train()

    # -- data order -----------------------------------------------------------------------------
    def batch_for_step(self, step: int) -> list[int]:
        from rlhfkit.trainers.ordering import length_grouped_batches

        cfg = self.cfg
        epoch, index = divmod(step, self.batches_per_epoch)
        if getattr(self, "_epoch_cache", (None,))[0] != epoch:
            lengths = [t.packed_len for t in self.train_tok]
            self._epoch_cache = (epoch, length_grouped_batches(
                lengths, cfg.batch_size * cfg.grad_accum, cfg.seed, epoch))
        return self._epoch_cache[1][index]

    # -- one step -------------------------------------------------------------------------------
    def train_step(self, indices: list[int]) -> dict:
        from rlhfkit.trainers.batching import collate_packed, collate_plain

        cfg, model = self.cfg, self.model
        collate = collate_packed if cfg.packing else collate_plain
        pad = model.tokenizer.pad_token_id
        pairs = sorted((self.train_tok[i] for i in indices), key=lambda t: t.packed_len)
        total_weight = sum(p.weight for p in pairs)
        micro = [pairs[i : i + cfg.batch_size] for i in range(0, len(pairs), cfg.batch_size)]
        sums: dict[str, float] = {}
        for part in micro:
            batch = collate(part, pad)
            # rewards: (b, H) per head; the loss is the sum over heads of each head's BT loss
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.dtype == "bf16"):
                chosen, rejected = model.pair_rewards(batch, packed=cfg.packing)
            loss = 0.0
            for h in range(chosen.shape[1]):
                head_loss, metrics = bradley_terry_loss(
                    chosen[:, h], rejected[:, h], label_smoothing=cfg.label_smoothing,
                    weights=batch["weights"], center_rewards_coef=cfg.center_rewards_coef)
                loss = loss + head_loss
            share = float(batch["weights"].sum()) / total_weight  # exact accumulation
            (loss * share).backward()
            for key, value in metrics.items():  # accuracy etc. of the last head
                if key != "loss":
                    sums[key] = sums.get(key, 0.0) + value * share
            sums["loss"] = sums.get("loss", 0.0) + float(loss.detach()) * share
        if cfg.grad_clip:
            sums["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(
                [p for p in model.parameters() if p.requires_grad], cfg.grad_clip))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return sums

    # -- loop -----------------------------------------------------------------------------------
    def train(self, stop_after: int | None = None) -> list[dict]:
        from rlhfkit.trainers.progress import training_progress

        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        started, tokens = time.perf_counter(), 0
        with training_progress(self.total_steps, self.step, enabled=cfg.progress) as advance:
            while self.step < self.total_steps:
                indices = self.batch_for_step(self.step)
                metrics = self.train_step(indices)  # batch -> rewards -> loss -> step
                self.step += 1
                tokens += sum(self.train_tok[i].packed_len for i in indices)
                metrics.update(step=self.step, lr=self.scheduler.get_last_lr()[0],
                               pairs_per_s=self.step_pairs_per_s(started, len(indices)))
                self.history.append(metrics)
                if cfg.eval_every and self.step % cfg.eval_every == 0 and self.eval_tok:
                    metrics.update({f"eval_{k}": v for k, v in self.evaluate(n_boot=200).items()
                                    if isinstance(v, (int, float))})
                if self.step % cfg.log_every == 0 or "eval_accuracy" in metrics:
                    self._log(metrics)
                advance(metrics)
                if cfg.save_every and self.step % cfg.save_every == 0:
                    self._save_checkpoint()
                if stop_after is not None and self.step >= stop_after:
                    break
        return self.history

    def step_pairs_per_s(self, started: float, n: int) -> float:
        self._pairs_seen = getattr(self, "_pairs_seen", 0) + n
        return self._pairs_seen / max(1e-9, time.perf_counter() - started)

    def evaluate(self, n_boot: int = 2000) -> dict:
        from rlhfkit.eval.reward_eval import evaluate_model

        return evaluate_model(self.model, self.eval_tok, self.cfg.eval_batch_size, self.cfg.packing,
                              self.cfg.dtype, n_boot=n_boot)

    def _log(self, metrics: dict) -> None:
        with open(self.out / "train_log.jsonl", "a") as fh:
            fh.write(json.dumps(metrics) + "\n")

    # -- checkpoints ----------------------------------------------------------------------------
    def _trainable_state(self) -> dict:
        return {n: p.detach().clone() for n, p in self.model.named_parameters() if p.requires_grad}

    def _save_checkpoint(self) -> None:
        folder = self.out / "checkpoint"
        folder.mkdir(parents=True, exist_ok=True)
        state = {
            "step": self.step, "params": self._trainable_state(),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "python": random.getstate()},
            "history": self.history, "config": asdict(self.cfg),
        }
        tmp = folder / "state.pt.tmp"
        torch.save(state, tmp)
        tmp.replace(folder / "state.pt")  # atomic: a kill mid-write leaves the old checkpoint

    def _load_checkpoint(self) -> None:
        state = torch.load(self.out / "checkpoint" / "state.pt", weights_only=False)
        params = dict(self.model.named_parameters())
        with torch.no_grad():
            for name, value in state["params"].items():
                params[name].copy_(value)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"]["torch"])
        random.setstate(state["rng"]["python"])
        self.step, self.history = state["step"], state["history"]

    def save(self, final_eval: dict | None = None) -> Path:
        meta = {"train_config": asdict(self.cfg), "steps": self.step, "max_length": self.cfg.max_length}
        if final_eval is not None:
            meta["eval"] = final_eval
        return self.model.save(self.out, extra_meta=meta)


def train_reward_model(cfg: RewardTrainConfig, **kw) -> tuple[Path, dict | None]:
    """setup -> train -> evaluate -> save; returns (output folder, final eval summary)."""
    trainer = RewardModelTrainer(cfg, **kw).setup()
    trainer.train()
    summary = trainer.evaluate() if trainer.eval_tok else None
    return trainer.save(summary), summary
