"""Supervised fine-tuning on (prompt, completion) examples.

Phases (``SFTTrainer``): tokenize (chat template for message prompts, EOS for plain text) ->
pack short examples into rows of at most ``max_length`` tokens (each example keeps its own
attention block and position ids, see ``packing.py``) -> train: the loss is the mean negative
log-likelihood of the *completion* tokens only, averaged over all completion tokens of the
optimiser step (so gradient accumulation does not change it) -> save a HF folder.

Data: JSONL records ``{"prompt": str | messages, "completion": str}``, ``{"messages": [...]}``
(the last assistant message is the completion), or any preference file ``rlhfkit.data`` reads
(the chosen answer is the completion).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from rlhfkit.trainers import loop
from rlhfkit.trainers.logprobs import completion_logps
from rlhfkit.trainers.packing import Segment, collate_rows, tokenize_prompt_completions


@dataclass
class SFTConfig:
    lr: float = field(default=2e-5, metadata={"help": "AdamW learning rate"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    lr_schedule: str = field(default="linear", metadata={"help": "constant | linear (decay to 0)"})
    warmup_steps: int = field(default=0, metadata={"help": "linear warm-up steps"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping norm; 0 disables"})
    batch_size: int = field(default=4, metadata={"help": "rows per micro-batch"})
    grad_accum: int = field(default=1, metadata={"help": "micro-batches per optimiser step"})
    epochs: int = field(default=1, metadata={"help": "passes over the data"})
    max_steps: int = field(default=0, metadata={"help": "stop after this many optimiser steps (0: epochs decide)"})
    max_length: int = field(default=512, metadata={"help": "max tokens per row (examples are cut, keeping the start)"})
    packing: bool = field(default=True, metadata={"help": "pack several short examples into one row"})
    dtype: str = field(default="fp32", metadata={"help": "fp32 | bf16 (autocast, fp32 master weights) | auto (bf16 only where native)"})
    seed: int = field(default=0, metadata={"help": "seed for data order"})


@dataclass
class SFTExample:
    prompt: str | list
    completion: str


def read_sft_examples(path: str | Path) -> list[SFTExample]:
    """Examples from a JSONL file in any of the shapes in the module docstring."""
    from rlhfkit.data import DataError, load_pairs
    from rlhfkit.data.io import iter_records

    out = []
    for lineno, record in iter_records(path):
        if not isinstance(record, dict):
            raise DataError(path, lineno, None, "expected a JSON object")
        if "completion" in record and "label" not in record:
            if not isinstance(record.get("completion"), str) or not record["completion"].strip():
                raise DataError(path, lineno, "completion", "expected a non-empty string")
            if "prompt" not in record:
                raise DataError(path, lineno, "prompt", "missing")
            out.append(SFTExample(record["prompt"], record["completion"]))
        elif "messages" in record:
            msgs = record["messages"]
            if not isinstance(msgs, list) or len(msgs) < 2 or msgs[-1].get("role") != "assistant":
                raise DataError(path, lineno, "messages", "need prompt messages then a final assistant message")
            out.append(SFTExample(msgs[:-1], msgs[-1]["content"]))
        else:
            return [SFTExample(p.prompt, p.chosen) for p in load_pairs(path)]
    return out


def pack_rows(tokenized: list[tuple[list[int], list[int]]], max_length: int, packing: bool) -> list[list[Segment]]:
    """Greedy first-fit packing of (prompt_ids, completion_ids) into rows of <= max_length tokens.
    Every completion segment is scored as output sequence = its example index."""
    rows: list[list[Segment]] = []
    room: list[int] = []
    for i, (p, c) in enumerate(tokenized):
        c = c[: max_length - len(p)]
        segs = [Segment(p), Segment(c, parent=None, score_as=i)]
        n = len(p) + len(c)
        target = next((r for r, free in enumerate(room) if free >= n), None) if packing else None
        if target is None:
            rows.append([])
            room.append(max_length)
            target = len(rows) - 1
        segs[1].parent = len(rows[target])
        rows[target] += segs
        room[target] -= n
    return rows


class SFTTrainer:
    def __init__(self, model, tokenizer, cfg: SFTConfig, out_dir: str | Path | None = None, show_progress: bool = True):
        self.model, self.tokenizer, self.cfg = model, tokenizer, cfg
        self.out = Path(out_dir) if out_dir else None
        from rlhfkit.models.loading import resolve_dtype_name

        cfg.dtype = resolve_dtype_name(cfg.dtype)  # "auto" -> bf16 only where bf16 matmul is native
        self.dtype = torch.bfloat16 if cfg.dtype == "bf16" else torch.float32
        self.show_progress = show_progress
        self.rows: list[list[Segment]] = []
        self.step = 0
        self.history: list[dict] = []
        loop.seed_everything(cfg.seed)

    def setup(self, examples: list[SFTExample]) -> "SFTTrainer":
        tokenized = []
        for ex in examples:
            prompt_ids, (completion_ids,) = tokenize_prompt_completions(self.tokenizer, ex.prompt, [ex.completion])
            if len(prompt_ids) < self.cfg.max_length:  # otherwise nothing left to learn from
                tokenized.append((prompt_ids, completion_ids))
        if not tokenized:
            raise ValueError("no usable examples: every prompt fills max_length, or the data are empty")
        self.rows = pack_rows(tokenized, self.cfg.max_length, self.cfg.packing)
        return self

    def collate(self, rows: list[list[Segment]]):
        """A PackedBatch of these rows, completions numbered 0..n-1 in row order."""
        n, out = 0, []
        for row in rows:
            new = []
            for s in row:
                if s.score_as is not None:
                    new.append(Segment(s.ids, s.parent, n))
                    n += 1
                else:
                    new.append(s)
            out.append(new)
        return collate_rows(out, self.tokenizer.pad_token_id, n)

    def total_steps(self) -> int:
        per_epoch = math.ceil(len(self.rows) / (self.cfg.batch_size * self.cfg.grad_accum))
        total = per_epoch * self.cfg.epochs
        return min(total, self.cfg.max_steps) if self.cfg.max_steps else total

    def train_step(self, optimizer, global_batch: list[int]) -> dict:
        cfg, t0 = self.cfg, time.perf_counter()
        self.model.train()
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * loop.lr_factor(self.step, self.total_steps(), cfg.warmup_steps, cfg.lr_schedule)
        optimizer.zero_grad(set_to_none=True)
        micro = [global_batch[i : i + cfg.batch_size] for i in range(0, len(global_batch), cfg.batch_size)]
        batches = [self.collate([self.rows[i] for i in idx]) for idx in micro]
        n_tokens = sum(len(b.target_ids) for b in batches)
        total_nll = 0.0
        for batch in batches:
            _, per_token = completion_logps(self.model, batch, self.dtype, return_tokens=True)  # forward
            nll = -per_token.sum() / n_tokens  # token mean over the whole optimiser step
            nll.backward()
            total_nll += float(nll.detach())
        params = [p for p in self.model.parameters() if p.requires_grad]
        norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm if cfg.max_grad_norm > 0 else float("inf"))
        optimizer.step()
        self.step += 1
        return {"step": self.step, "loss": total_nll, "completion_tokens": n_tokens, "grad_norm": float(norm),
                "lr": optimizer.param_groups[0]["lr"], "s_per_step": time.perf_counter() - t0}

    def train(self) -> list[dict]:
        cfg = self.cfg
        optimizer = loop.adamw([p for p in self.model.parameters() if p.requires_grad], cfg.lr, cfg.weight_decay)
        global_bs = cfg.batch_size * cfg.grad_accum
        per_epoch = math.ceil(len(self.rows) / global_bs)
        logger = loop.StepLogger(self.out / "metrics.jsonl" if self.out else None, self.total_steps(), "sft",
                                 self.show_progress)
        try:
            while self.step < self.total_steps():
                epoch, k = divmod(self.step, per_epoch)
                g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
                order = torch.randperm(len(self.rows), generator=g).tolist()
                record = {**self.train_step(optimizer, order[k * global_bs : (k + 1) * global_bs]), "epoch": epoch}
                self.history.append(record)
                logger.log(record)
        finally:
            logger.close()
        return self.history

    def save(self, out: str | Path | None = None) -> Path:
        folder = loop.save_hf_folder(self.model, self.tokenizer, Path(out) if out else self.out)
        (folder / "rlhfkit_sft_config.json").write_text(json.dumps(asdict(self.cfg), indent=2))
        return folder
