"""Train a reward model on preference pairs with the Bradley-Terry loss.

Phases of one optimiser step (run by ``loop.fit``): batch -> micro-batches -> rewards -> loss ->
backward -> step -> log.

- Data order is a pure function of (seed, epoch): length-bucketed batches (little padding) in a
  seeded random order, so a resumed run sees exactly the batches the uninterrupted run saw.
- One optimiser batch of ``batch_size * grad_accum`` pairs is split into ``grad_accum``
  micro-batches; each micro-batch loss (a weighted mean) is scaled by its share of the batch's
  total weight, so the accumulated gradient equals the full batch's gradient (1x8 == 8x1).
- ``packing``: each pair is one row [prompt | chosen | rejected] (``rlhfkit/packing.py``), so
  the shared prompt is computed once; benchmarks/reward_model.py measures it against 2 rows.
- ``dtype="bf16"``: bf16 autocast on the model's device, weights and optimiser state stay fp32.
- Checkpoints (``out/checkpoint/state.pt``) hold the trainable weights, optimiser, step, RNG
  states and the metrics history; a re-run with ``resume`` continues and reproduces the losses.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from rlhfkit.losses.reward import bradley_terry_loss
from rlhfkit.packing import collate_pairs, tokenize_reward_pairs
from rlhfkit.trainers import loop
from rlhfkit.trainers.config import RewardTrainConfig  # noqa: F401  (re-exported for callers)
from rlhfkit.trainers.ordering import length_grouped_batches


class RewardModelTrainer:
    """setup() -> train() -> save(); ``train`` may stop early via ``stop_after`` (tests)."""

    name = "reward"

    def __init__(self, cfg: RewardTrainConfig, train_pairs=None, eval_pairs=None, model=None):
        self.cfg = cfg
        self.out = Path(cfg.out) if cfg.out else None
        self._train_pairs, self._eval_pairs, self.model = train_pairs, eval_pairs, model
        self.step = 0
        self.history: list[dict] = []

    # -- setup ----------------------------------------------------------------------------------
    def setup(self) -> "RewardModelTrainer":
        from rlhfkit.data import load_pairs
        from rlhfkit.models.loading import resolve_dtype_name
        from rlhfkit.models.reward_model import RewardModel

        cfg = self.cfg.validate()
        cfg.dtype = resolve_dtype_name(cfg.dtype)
        self.dtype = torch.bfloat16 if cfg.dtype == "bf16" else torch.float32
        loop.seed_everything(cfg.seed)
        if self.model is None:
            self.model = RewardModel.from_backbone(cfg.model, n_heads=cfg.n_heads, seed=cfg.seed)
        self._prepare_model()
        pairs = self._train_pairs if self._train_pairs is not None else load_pairs(cfg.data)
        pairs = pairs[: cfg.limit] if cfg.limit else pairs
        if not pairs:
            raise ValueError(f"{cfg.data}: no training pairs")
        self.train_tok = tokenize_reward_pairs(self.model.tokenizer, pairs, cfg.max_length)
        eval_pairs = self._eval_pairs
        if eval_pairs is None and cfg.eval_data:
            eval_pairs = load_pairs(cfg.eval_data)
        self.eval_tok = tokenize_reward_pairs(self.model.tokenizer, eval_pairs, cfg.max_length) if eval_pairs else None
        self.weights = torch.tensor([t.weight for t in self.train_tok])
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

    # -- the loop calls these -------------------------------------------------------------------
    def total_steps(self) -> int:
        return loop.steps_for(len(self.train_tok), self.cfg)[1]

    def batch_for_step(self, step: int) -> list[int]:
        cfg = self.cfg
        per_epoch = loop.steps_for(len(self.train_tok), cfg)[0]
        epoch, index = divmod(step, per_epoch)
        if getattr(self, "_epoch_cache", (None,))[0] != epoch:
            lengths = [t.packed_len for t in self.train_tok]
            self._epoch_cache = (epoch, length_grouped_batches(lengths, cfg.global_batch, cfg.seed, epoch))
        return self._epoch_cache[1][index]

    def micro_batches(self, indices: list[int]) -> list[tuple]:
        """Packed pairs per micro-batch (shortest first), weighted by their total pair weight."""
        pairs = sorted(indices, key=lambda i: self.train_tok[i].packed_len)
        pad = self.model.tokenizer.pad_token_id
        out = []
        for k in range(0, len(pairs), self.cfg.batch_size):
            idx = pairs[k : k + self.cfg.batch_size]
            batch = collate_pairs([self.train_tok[i] for i in idx], pad, self.cfg.packing)
            out.append(((idx, batch), float(self.weights[idx].sum())))
        return out

    def loss(self, micro) -> tuple[torch.Tensor, dict]:
        idx, batch = micro
        chosen, rejected = self.model.pair_rewards(batch, self.dtype)  # (b, H) per head
        weights = self.weights[idx].to(chosen.device)
        loss, metrics = 0.0, {}
        for h in range(chosen.shape[1]):  # the sum over heads of each head's BT loss
            head_loss, metrics = bradley_terry_loss(
                chosen[:, h], rejected[:, h], label_smoothing=self.cfg.label_smoothing,
                weights=weights, center_rewards_coef=self.cfg.center_rewards_coef)
            loss = loss + head_loss
        return loss, {k: v for k, v in metrics.items() if k != "loss"}  # accuracy etc. of the last head

    def after_step(self, record: dict) -> None:
        record["pairs_per_s"] = self.cfg.global_batch / max(1e-9, record["s_per_step"])

    def train(self, stop_after: int | None = None) -> list[dict]:
        return loop.fit(self, self.out, stop_after, "reward model")

    def evaluate(self, n_boot: int = 200) -> dict:
        from rlhfkit.eval.reward_eval import evaluate_model

        return evaluate_model(self.model, self.eval_tok, self.cfg.eval_batch_size, self.cfg.packing,
                              self.cfg.dtype, n_boot=n_boot)

    def save(self, final_eval: dict | None = None) -> Path:
        meta = {"train_config": asdict(self.cfg), "steps": self.step, "max_length": self.cfg.max_length}
        if final_eval is not None:
            meta["eval"] = final_eval
        if not loop.is_main_process():  # launched distributed: rank 0 writes the folder
            loop.barrier()
            return self.out
        folder = self.model.save(self.out, extra_meta=meta)
        loop.barrier()
        return folder


def train_reward_model(cfg: RewardTrainConfig, **kw) -> tuple[Path, dict | None]:
    """setup -> train -> evaluate -> save; returns (output folder, final eval summary)."""
    trainer = RewardModelTrainer(cfg, **kw).setup()
    trainer.train()
    summary = trainer.evaluate(n_boot=2000) if trainer.eval_tok else None
    return trainer.save(summary), summary
