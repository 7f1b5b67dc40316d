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

import contextlib
import hashlib
import math
from pathlib import Path

import torch

from rlhfkit.losses.dpo import cdpo_loss, dpo_loss, ipo_loss, robust_dpo_loss, simpo_loss
from rlhfkit.losses.kto import kto_loss
from rlhfkit.models.logprobs import completion_logps
from rlhfkit.models.numerics import snap_to_bf16_grid
from rlhfkit.packing import TokenizedGroup, collate_pairs, tokenize_group, tokenize_pairs
from rlhfkit.progress import progress
from rlhfkit.trainers import loop
from rlhfkit.trainers.config import LOSSES, DPOConfig  # noqa: F401  (re-exported for callers)
from rlhfkit.trainers.ordering import length_grouped_batches


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


def _weighted_examples(examples: list[TokenizedGroup], pairs) -> tuple[list[TokenizedGroup], torch.Tensor | None]:
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


def unpaired_examples(tokenizer, feedback, max_length: int, seed: int) -> tuple[list[TokenizedGroup], list[bool]]:
    """KTO examples from (prompt, completion, label) triples or from ``PreferencePair``s (chosen ->
    thumbs up, rejected -> thumbs down), each packed with the completion of the next example in a
    fixed shuffled order as its KL-estimate branch (TRL pairs them the same way)."""
    if feedback and not isinstance(feedback[0], tuple):
        feedback = [t for p in feedback for t in ((p.prompt, p.chosen, True), (p.prompt, p.rejected, False))]
    flat = []
    for prompt, completion, label in feedback:
        group = tokenize_group(tokenizer, prompt, [completion], max_length)
        if group is not None:
            flat.append((group.prompt_ids, group.completion_ids[0], label))
    g = torch.Generator().manual_seed(seed)
    flat = [flat[i] for i in torch.randperm(len(flat), generator=g).tolist()]
    examples, labels = [], []
    for i, (prompt, completion, label) in enumerate(flat):
        other = flat[(i + 1) % len(flat)][1]
        examples.append(TokenizedGroup(prompt, [completion, other[: max_length - len(prompt)]], index=i))
        labels.append(label)
    return examples, labels


def _fingerprint(examples: list[TokenizedGroup]) -> str:
    h = hashlib.sha1()
    for e in examples:
        h.update(repr((e.prompt_ids, e.chosen_ids, e.rejected_ids)).encode())
    return h.hexdigest()


# --------------------------------------------------------------------------- trainer
class DPOTrainer:
    """setup (tokenize + reference) -> train (``loop.fit``) -> save. Phases: module docstring."""

    name = "dpo"
    supports_fsdp = True  # the model is called only inside loss/evaluate (loop.shard_model)

    def __init__(self, model, tokenizer, cfg: DPOConfig, out_dir: str | Path | None = None,
                 show_progress: bool | None = None):
        from rlhfkit.models.loading import resolve_dtype_name

        self.cfg = cfg.validate()
        if show_progress is not None:
            cfg.progress = show_progress
        self.tokenizer = tokenizer
        self.out = Path(out_dir) if out_dir else None
        cfg.dtype = resolve_dtype_name(cfg.dtype)  # "auto" -> bf16 only where bf16 matmul is native
        self.dtype = torch.bfloat16 if cfg.dtype == "bf16" else torch.float32
        loop.seed_everything(cfg.seed)
        self.model = self._wrap_lora(model) if cfg.lora_r else model
        self.examples: list[TokenizedGroup] = []
        self.labels: torch.Tensor | None = None
        self.weights: torch.Tensor | None = None  # (n,) per-pair weights; None when all are 1
        self.ref_logps: torch.Tensor | None = None  # (n, 2): chosen/completion, rejected/KL branch
        self.eval_examples: list[TokenizedGroup] = []
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
            self.snapped = snap_to_bf16_grid(self.model)
        self.ref_logps = self._reference_logps(self.examples, "reference_logps.pt", self.cfg.loss == "simpo")
        if eval_pairs:
            self.eval_examples = tokenize_pairs(self.tokenizer, eval_pairs, self.cfg.max_length)
            self.eval_ref_logps = self._reference_logps(self.eval_examples, "reference_logps_eval.pt")
        return self

    def evaluate(self) -> dict:
        """Implicit-reward accuracy and margins on the held-out pairs given to ``setup``."""
        from rlhfkit.eval.policy_eval import implicit_reward_accuracy

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
            from rlhfkit.data.atomic import atomic_write

            with atomic_write(cache, "wb") as fh:
                torch.save({"fingerprint": key, "logps": ref}, fh)
        return ref

    def _reference_context(self):
        if hasattr(self.model, "disable_adapter"):
            return self.model.disable_adapter()  # LoRA: the reference is the base model
        return contextlib.nullcontext()

    @torch.no_grad()
    def sequence_logps(self, examples: list[TokenizedGroup], context=None,
                       description: str = "log-probs") -> torch.Tensor:
        """(n, 2) summed log-probs of the two completions of each example, current weights."""
        was_training = self.model.training
        self.model.eval()
        out = torch.zeros(len(examples), 2)
        order = sorted(range(len(examples)), key=lambda i: examples[i].packed_len)
        bs = self.cfg.ref_batch_size
        with (context or contextlib.nullcontext(),
              progress(math.ceil(len(order) / bs), description, enabled=self.cfg.progress) as advance):
            for start in range(0, len(order), bs):
                idx = order[start : start + bs]
                batch = collate_pairs([examples[i] for i in idx], self.tokenizer.pad_token_id, self.cfg.packing)
                logps = completion_logps(self.model, batch, self.dtype).float().cpu()  # (2b,)
                out[idx, 0], out[idx, 1] = logps[: len(idx)], logps[len(idx) :]
                advance()
        self.model.train(was_training)
        return out

    # ---- phase 3: train (the loop calls these)
    def total_steps(self) -> int:
        return loop.steps_for(len(self.examples), self.cfg)[1]

    def batch_for_step(self, step: int) -> list[int]:
        per_epoch = loop.steps_for(len(self.examples), self.cfg)[0]
        epoch, k = divmod(step, per_epoch)
        lengths = [e.packed_len for e in self.examples]
        return length_grouped_batches(lengths, self.cfg.global_batch, self.cfg.seed, epoch)[k]

    def micro_batches(self, indices: list[int]) -> list[tuple]:
        """(indices, packed rows) per micro-batch, weighted by pairs (or by total pair weight)."""
        out = []
        for start in range(0, len(indices), self.cfg.batch_size):
            idx = indices[start : start + self.cfg.batch_size]
            batch = collate_pairs([self.examples[i] for i in idx], self.tokenizer.pad_token_id, self.cfg.packing)
            weight = float(self.weights[idx].sum()) if self.weights is not None else float(len(idx))
            out.append(((idx, batch), weight))
        return out

    def loss(self, micro) -> tuple[torch.Tensor, dict]:
        idx, batch = micro
        policy = completion_logps(self.model, batch, self.dtype)  # (2b,) forward
        ref = torch.cat([self.ref_logps[idx, 0], self.ref_logps[idx, 1]]).to(policy.device)
        labels = self.labels[idx] if self.labels is not None else None
        weights = self.weights[idx] if self.weights is not None else None
        lengths = batch.lengths.float().to(policy.device)
        return compute_loss(self.cfg, policy, ref, lengths, labels, weights)

    def train(self, stop_after: int | None = None) -> list[dict]:
        """Run to ``total_steps()`` (or stop after step ``stop_after``, as if killed there); resumes
        from ``out/checkpoint`` when ``cfg.resume``. Returns the records of the steps run now."""
        if self.ref_logps is None:
            raise RuntimeError("call setup(pairs) before train()")
        return loop.fit(self, self.out, stop_after, f"{self.cfg.loss} ({self.cfg.dtype})")

    # ---- phase 4: save
    def save(self, out: str | Path | None = None) -> Path:
        folder = loop.save_hf_folder(self.model, self.tokenizer, Path(out) if out else self.out)
        loop.write_config(folder, "rlhfkit_dpo_config.json", self.cfg)
        return folder
