"""Offline preference optimisation: DPO, cDPO, robust DPO, IPO, SimPO and KTO.

Phases (``DPOTrainer``):

1. tokenize  - pairs -> token ids (TRL's tokenisation and ``keep_start`` truncation);
2. reference - (bf16 only) snap the weights to the bf16 grid, then compute the reference
               log-probs of every completion ONCE with the same packed forward the policy uses,
               and cache them to ``<out>/reference_logps.pt``. No reference model is held in
               memory while training; with LoRA the reference is the base model with the
               adapters disabled. (TRL recomputes the reference every step by default.)
3. train     - per optimiser step: length-grouped batch -> packed ``[prompt|chosen|rejected]``
               forward under bf16 autocast -> loss (``rlhfkit.losses``) -> backward,
               accumulated over micro-batches -> clip -> AdamW step -> log a JSONL line;
               checkpoint every ``save_every`` steps (resume reproduces the run exactly).
4. save      - a plain HF folder (safetensors) that ``transformers`` loads.

KTO uses the same machinery on unpaired examples: the row is
``[prompt | completion | mismatched completion]``, whose second branch gives the KL
reference-point estimate (the completion of the next example, as TRL does).
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from rlhfkit.losses.dpo import cdpo_loss, dpo_loss, ipo_loss, robust_dpo_loss, simpo_loss
from rlhfkit.losses.kto import kto_loss
from rlhfkit.trainers import loop
from rlhfkit.trainers.logprobs import completion_logps
from rlhfkit.trainers.ordering import length_grouped_batches
from rlhfkit.trainers.packing import TokenizedPair, collate_pairs, tokenize_pairs

LOSSES = ("dpo", "ipo", "cdpo", "robust", "simpo", "kto")


@dataclass
class DPOConfig:
    loss: str = field(default="dpo", metadata={"help": "dpo | ipo | cdpo | robust | simpo | kto"})
    beta: float = field(default=0.1, metadata={"help": "inverse temperature (IPO: tau; SimPO: reward scale)"})
    label_smoothing: float = field(default=0.1, metadata={"help": "label-flip rate eps for cdpo and robust"})
    simpo_gamma: float = field(default=0.5, metadata={"help": "SimPO target reward margin"})
    desirable_weight: float = field(default=1.0, metadata={"help": "KTO weight of thumbs-up examples"})
    undesirable_weight: float = field(default=1.0, metadata={"help": "KTO weight of thumbs-down examples"})
    lr: float = field(default=1e-6, metadata={"help": "AdamW learning rate"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    lr_schedule: str = field(default="linear", metadata={"help": "constant | linear (decay to 0)"})
    warmup_steps: int = field(default=0, metadata={"help": "linear warm-up steps"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping norm; 0 disables"})
    batch_size: int = field(default=4, metadata={"help": "pairs per micro-batch"})
    grad_accum: int = field(default=1, metadata={"help": "micro-batches per optimiser step"})
    epochs: int = field(default=1, metadata={"help": "passes over the data"})
    max_steps: int = field(default=0, metadata={"help": "stop after this many optimiser steps (0: epochs decide)"})
    max_length: int = field(default=512, metadata={"help": "max tokens of prompt + completion (keep the start)"})
    dtype: str = field(default="fp32", metadata={"help": "fp32 | bf16 (autocast, fp32 master weights) | auto (bf16 only where native)"})
    snap_bf16: bool = field(default=True, metadata={"help": "bf16: snap weights to the bf16 grid before the reference"})
    shared_prompt: bool = field(default=True, metadata={"help": "pack [prompt|chosen|rejected] in one row"})
    lora_r: int = field(default=0, metadata={"help": "LoRA rank (0: full fine-tuning)"})
    lora_alpha: float = field(default=16.0, metadata={"help": "LoRA alpha"})
    seed: int = field(default=0, metadata={"help": "seed for data order and initialisation"})
    save_every: int = field(default=0, metadata={"help": "checkpoint every N steps (0: never)"})
    ref_batch_size: int = field(default=16, metadata={"help": "pairs per batch of the reference pass"})

    def validate(self) -> "DPOConfig":
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; choose from {', '.join(LOSSES)}")
        if self.dtype not in ("fp32", "bf16", "auto"):
            raise ValueError(f"unknown dtype {self.dtype!r}; choose fp32, bf16 or auto")
        if self.batch_size < 1 or self.grad_accum < 1:
            raise ValueError("batch_size and grad_accum must be >= 1")
        return self


# --------------------------------------------------------------------------- loss adapters
def compute_loss(cfg: DPOConfig, policy: torch.Tensor, ref: torch.Tensor, lengths: torch.Tensor,
                 labels: torch.Tensor | None = None, weights: torch.Tensor | None = None):
    """Split the (2B,) sequence log-probs into their roles and call the pure loss function.
    ``weights`` (B,): per-pair weights of the paired losses (KTO has its own class weights)."""
    b = policy.shape[0] // 2
    pc, pr, rc, rr, lc, lr_ = policy[:b], policy[b:], ref[:b], ref[b:], lengths[:b], lengths[b:]
    if cfg.loss == "dpo":
        return dpo_loss(pc, pr, rc, rr, beta=cfg.beta, weights=weights)
    if cfg.loss == "cdpo":
        return cdpo_loss(pc, pr, rc, rr, beta=cfg.beta, label_smoothing=cfg.label_smoothing, weights=weights)
    if cfg.loss == "robust":
        return robust_dpo_loss(pc, pr, rc, rr, beta=cfg.beta, label_smoothing=cfg.label_smoothing, weights=weights)
    if cfg.loss == "ipo":
        return ipo_loss(pc, pr, rc, rr, lc, lr_, beta=cfg.beta, weights=weights)
    if cfg.loss == "simpo":
        return simpo_loss(pc, pr, lc, lr_, beta=cfg.beta, gamma=cfg.simpo_gamma, weights=weights)
    # kto: first half = the examples' completions, second half = mismatched (KL) completions
    return kto_loss(pc, rc, labels, pr, rr, beta=cfg.beta, desirable_weight=cfg.desirable_weight,
                    undesirable_weight=cfg.undesirable_weight)


def _weighted_examples(examples: list[TokenizedPair], pairs) -> tuple[list[TokenizedPair], torch.Tensor | None]:
    """Drop pairs of weight 0 (they carry no signal, and a micro-batch of them has no mean);
    the per-example weights, or None when every weight is 1 (the unweighted, TRL-identical path)."""
    weights = [float(getattr(pairs[e.index], "weight", 1.0)) for e in examples]
    kept = [(e, w) for e, w in zip(examples, weights) if w > 0]
    if all(w == 1.0 for _, w in kept):
        return [e for e, _ in kept], None
    return [e for e, _ in kept], torch.tensor([w for _, w in kept])


def unpaired_feedback(items) -> list[tuple]:
    """(prompt, completion, thumbs_up) triples from ``PreferenceItem``s: thumbs up/down judgements
    as they are, and every preference pair split into a thumbs-up chosen and a thumbs-down rejected."""
    from rlhfkit.schema import item_to_pairs

    out = []
    for item in items:
        for ann in item.annotations:
            if ann.judgement.kind == "binary":
                out.append((item.prompt, item.responses[ann.judgement.response].text, ann.judgement.thumbs_up))
        for pair in item_to_pairs(item):
            out += [(pair.prompt, pair.chosen, True), (pair.prompt, pair.rejected, False)]
    return out


def unpaired_examples(tokenizer, feedback, max_length: int, seed: int) -> tuple[list[TokenizedPair], list[bool]]:
    """KTO examples from (prompt, completion, label) triples or from ``PreferencePair``s (chosen ->
    thumbs up, rejected -> thumbs down), each packed with the completion of the next example in a
    fixed shuffled order as its KL-estimate branch (TRL pairs them the same way)."""
    from rlhfkit.trainers.packing import tokenize_prompt_completions

    if feedback and not isinstance(feedback[0], tuple):
        feedback = [t for p in feedback for t in ((p.prompt, p.chosen, True), (p.prompt, p.rejected, False))]
    flat = []
    for prompt, completion, label in feedback:
        prompt_ids, (completion_ids,) = tokenize_prompt_completions(tokenizer, prompt, [completion])
        if len(prompt_ids) < max_length:
            flat.append((prompt_ids, completion_ids[: max_length - len(prompt_ids)], label))
    g = torch.Generator().manual_seed(seed)
    flat = [flat[i] for i in torch.randperm(len(flat), generator=g).tolist()]
    examples, labels = [], []
    for i, (prompt, completion, label) in enumerate(flat):
        other = flat[(i + 1) % len(flat)][1]
        examples.append(TokenizedPair(prompt, completion, other[: max_length - len(prompt)], index=i))
        labels.append(label)
    return examples, labels


def _fingerprint(examples: list[TokenizedPair]) -> str:
    h = hashlib.sha1()
    for e in examples:
        h.update(repr((e.prompt_ids, e.chosen_ids, e.rejected_ids)).encode())
    return h.hexdigest()


# --------------------------------------------------------------------------- trainer
class DPOTrainer:
    """setup (tokenize + reference) -> train -> save. See the module docstring for the phases."""

    def __init__(self, model, tokenizer, cfg: DPOConfig, out_dir: str | Path | None = None,
                 show_progress: bool = True):
        self.cfg = cfg.validate()
        self.tokenizer = tokenizer
        self.out = Path(out_dir) if out_dir else None
        from rlhfkit.models.loading import resolve_dtype_name

        cfg.dtype = resolve_dtype_name(cfg.dtype)  # "auto" -> bf16 only where bf16 matmul is native
        self.dtype = torch.bfloat16 if cfg.dtype == "bf16" else torch.float32
        self.show_progress = show_progress
        loop.seed_everything(cfg.seed)
        self.model = self._wrap_lora(model) if cfg.lora_r else model
        self.examples: list[TokenizedPair] = []
        self.labels: torch.Tensor | None = None
        self.weights: torch.Tensor | None = None  # (n,) per-pair weights; None when all are 1
        self.ref_logps: torch.Tensor | None = None  # (n, 2): chosen/completion, rejected/KL branch
        self.eval_examples: list[TokenizedPair] = []
        self.eval_ref_logps: torch.Tensor | None = None
        self.step = 0
        self.history: list[dict] = []

    def _wrap_lora(self, model):
        from peft import LoraConfig, get_peft_model

        target = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
        config = LoraConfig(r=self.cfg.lora_r, lora_alpha=self.cfg.lora_alpha, target_modules=target,
                            lora_dropout=0.0, task_type="CAUSAL_LM")
        return get_peft_model(model, config)

    # ---- phase 1+2: tokenize and cache the reference
    def setup(self, pairs, eval_pairs=None) -> "DPOTrainer":
        """Tokenize, snap (bf16), and cache reference log-probs of the training pairs and of the
        held-out ``eval_pairs`` (for ``evaluate()``), all before any weight changes. For KTO,
        ``pairs`` may also be (prompt, completion, thumbs_up) triples (``unpaired_feedback``)."""
        if self.cfg.loss == "kto":
            self.examples, labels = unpaired_examples(self.tokenizer, pairs, self.cfg.max_length, self.cfg.seed)
            self.labels = torch.tensor(labels)
        else:
            self.examples, self.weights = _weighted_examples(
                tokenize_pairs(self.tokenizer, pairs, self.cfg.max_length), pairs)
        if not self.examples:
            raise ValueError("no usable pairs: every prompt fills max_length, or the data are empty")
        if self.cfg.dtype == "bf16" and self.cfg.snap_bf16:
            self.snapped = loop.snap_to_bf16_grid(self.model)
        self.ref_logps = self._reference_logps(self.examples, "reference_logps.pt", self.cfg.loss == "simpo")
        if eval_pairs:
            self.eval_examples = tokenize_pairs(self.tokenizer, eval_pairs, self.cfg.max_length)
            self.eval_ref_logps = self._reference_logps(self.eval_examples, "reference_logps_eval.pt")
        return self

    def evaluate(self) -> dict:
        """Implicit-reward accuracy and margins on the held-out pairs given to ``setup``."""
        from rlhfkit.trainers.dpo_eval import implicit_reward_accuracy

        return implicit_reward_accuracy(self.sequence_logps(self.eval_examples, description="held-out log-probs"),
                                        self.eval_ref_logps, self.cfg.beta)

    def _reference_logps(self, examples, filename: str, reference_free: bool = False) -> torch.Tensor:
        cache = self.out / filename if self.out else None
        key = _fingerprint(examples)
        if cache is not None and cache.exists():
            saved = torch.load(cache, weights_only=False)
            if saved["fingerprint"] == key:
                return saved["logps"]
        if reference_free:
            ref = torch.zeros(len(examples), 2)
        else:
            label = "reference log-probs" + ("" if filename == "reference_logps.pt" else " (held out)")
            ref = self.sequence_logps(examples, self._reference_context(), label)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"fingerprint": key, "logps": ref}, cache)
        return ref

    def _reference_context(self):
        import contextlib

        if hasattr(self.model, "disable_adapter"):
            return self.model.disable_adapter()  # LoRA: the reference is the base model
        return contextlib.nullcontext()

    @torch.no_grad()
    def sequence_logps(self, examples: list[TokenizedPair], context=None,
                       description: str = "log-probs") -> torch.Tensor:
        """(n, 2) summed log-probs of the two completions of each example, current weights."""
        import contextlib

        from rlhfkit.trainers.progress import training_progress

        was_training = self.model.training
        self.model.eval()
        out = torch.zeros(len(examples), 2)
        order = sorted(range(len(examples)), key=lambda i: examples[i].packed_len)
        bs = self.cfg.ref_batch_size
        with (context or contextlib.nullcontext(),
              training_progress(math.ceil(len(order) / bs), enabled=self.show_progress, description=description) as advance):
            for start in range(0, len(order), bs):
                idx = order[start : start + bs]
                batch = collate_pairs([examples[i] for i in idx], self.tokenizer.pad_token_id, self.cfg.shared_prompt)
                logps = completion_logps(self.model, batch, self.dtype).float().cpu()  # (2b,)
                out[idx, 0], out[idx, 1] = logps[: len(idx)], logps[len(idx) :]
                advance({})
        self.model.train(was_training)
        return out

    # ---- phase 3: train
    def total_steps(self) -> int:
        per_epoch = math.ceil(len(self.examples) / (self.cfg.batch_size * self.cfg.grad_accum))
        total = per_epoch * self.cfg.epochs
        return min(total, self.cfg.max_steps) if self.cfg.max_steps else total

    def _optimizer(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        return loop.adamw(params, self.cfg.lr, self.cfg.weight_decay)

    def train_step(self, optimizer, global_batch: list[int]) -> dict:
        """One optimiser step over ``global_batch`` (indices), split into micro-batches."""
        cfg = self.cfg
        t0 = time.perf_counter()
        self.model.train()
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * loop.lr_factor(self.step, self.total_steps(), cfg.warmup_steps, cfg.lr_schedule)
        optimizer.zero_grad(set_to_none=True)
        sums: dict[str, float] = {}
        n_total = len(global_batch)
        for start in range(0, n_total, cfg.batch_size):
            idx = global_batch[start : start + cfg.batch_size]
            batch = collate_pairs([self.examples[i] for i in idx], self.tokenizer.pad_token_id, cfg.shared_prompt)
            policy = completion_logps(self.model, batch, self.dtype)  # (2b,) forward
            ref = torch.cat([self.ref_logps[idx, 0], self.ref_logps[idx, 1]])
            labels = self.labels[idx] if self.labels is not None else None
            weights = self.weights[idx] if self.weights is not None else None
            loss, metrics = compute_loss(cfg, policy, ref, batch.lengths.float(), labels, weights)  # loss
            # accumulate: the global loss is a (weighted) mean over the pairs of the whole step
            share = (weights.sum() / self.weights[global_batch].sum() if weights is not None
                     else len(idx) / n_total)
            (loss * share).backward()
            for k, v in {"loss": loss.detach(), **metrics}.items():
                sums[k] = sums.get(k, 0.0) + float(v) * len(idx) / n_total
            sums["tokens"] = sums.get("tokens", 0) + batch.num_tokens
        params = [p for p in self.model.parameters() if p.requires_grad]
        norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm if cfg.max_grad_norm > 0 else float("inf"))
        optimizer.step()  # step
        self.step += 1
        return {"step": self.step, **sums, "grad_norm": float(norm), "lr": optimizer.param_groups[0]["lr"],
                "s_per_step": time.perf_counter() - t0}

    def train(self, resume: bool = True, until: int | None = None) -> list[dict]:
        """Run to ``total_steps()`` (or stop after step ``until``, as if killed there)."""
        if self.ref_logps is None:
            raise RuntimeError("call setup(pairs) before train()")
        optimizer = self._optimizer()
        ckpt = self.out / "checkpoint.pt" if self.out else None
        if resume and ckpt is not None and ckpt.exists():
            self.step = loop.load_checkpoint(ckpt, self.model, optimizer)["step"]
        total = self.total_steps()
        stop = min(total, until) if until is not None else total
        lengths = [e.packed_len for e in self.examples]
        global_bs = self.cfg.batch_size * self.cfg.grad_accum
        per_epoch = math.ceil(len(self.examples) / global_bs)
        logger = loop.StepLogger(self.out / "metrics.jsonl" if self.out else None, total,
                                 f"{self.cfg.loss} ({self.cfg.dtype})", self.show_progress)
        try:
            while self.step < stop:
                epoch, k = divmod(self.step, per_epoch)
                batch = length_grouped_batches(lengths, global_bs, self.cfg.seed, epoch)[k]
                record = {**self.train_step(optimizer, batch), "epoch": epoch}
                self.history.append(record)
                logger.log(record)
                if ckpt is not None and self.cfg.save_every and self.step % self.cfg.save_every == 0:
                    loop.save_checkpoint(ckpt, self.model, optimizer, {"step": self.step})
        finally:
            logger.close()
        return self.history

    # ---- phase 4: save
    def save(self, out: str | Path | None = None) -> Path:
        out = Path(out) if out else self.out
        import json

        folder = loop.save_hf_folder(self.model, self.tokenizer, out)
        (folder / "rlhfkit_dpo_config.json").write_text(json.dumps(asdict(self.cfg), indent=2))
        return folder
