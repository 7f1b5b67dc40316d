"""Train a reward model: Bradley-Terry on pairs, Plackett-Luce on K-wise rankings, or
regression on scalar ratings (``cfg.loss``; which labels of a mixed file each one uses is the
rule in ``rlhfkit.data.reward_labels``).

Phases of one optimiser step (run by ``loop.fit``): batch -> micro-batches -> rewards -> loss ->
backward -> step -> log.

- An example is one group of ``rlhfkit.packing``: a pair is [prompt | chosen | rejected], a
  ranking of K is [prompt | r1 | ... | rK] (rankings of different K share a micro-batch; missing
  slots carry tier -1), a rated response is [prompt | response]. The loss functions are the
  pure ones of ``rlhfkit.losses.reward``, applied per head and summed over heads.
- ``bootstrap``: head h trains on its own bootstrap resample of the N training examples, drawn
  once in ``setup`` as multiplicities c_h (multinomial, N draws, seeded by ``seed``; head h takes
  the h-th draw). With one backbone the resample is applied as weights: head h's loss is
  ``sum_i w_i c_hi l_hi / sum_i w_i`` over the optimiser batch, the minibatch estimate of its
  loss on the resampled set, and it keeps gradient accumulation exact (the denominator does not
  depend on the head). Examples with c_hi = 0 are held out of head h (out-of-bag).

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

from rlhfkit.losses.reward import bradley_terry_loss, plackett_luce_loss, rating_regression_loss
from rlhfkit.packing import collate_groups, tokenize_reward_groups, tokenize_reward_pairs
from rlhfkit.trainers import loop
from rlhfkit.trainers.config import RewardTrainConfig  # noqa: F401  (re-exported for callers)
from rlhfkit.trainers.ordering import length_grouped_batches


def bootstrap_counts(n: int, n_heads: int, seed: int) -> torch.Tensor:
    """(n, H) multiplicities of each example in each head's bootstrap resample: column h counts
    how often example i is drawn in n draws with replacement; a pure function of (n, H, seed)."""
    generator = torch.Generator().manual_seed(seed)
    draws = torch.randint(0, n, (n_heads, n), generator=generator)  # (H, n)
    return torch.stack([torch.bincount(d, minlength=n) for d in draws], dim=1).float()  # (n, H)


class RewardModelTrainer:
    """setup() -> train() -> save(); ``train`` may stop early via ``stop_after`` (tests)."""

    name = "reward"
    supports_fsdp = True  # the model is called only inside loss/evaluate (loop.shard_model)

    def __init__(self, cfg: RewardTrainConfig, train_pairs=None, eval_pairs=None, model=None):
        """``train_pairs``: training examples instead of ``cfg.data``: ``PreferencePair``s (read
        as rankings of two under ``pl``), ``RankedResponses`` (``pl``) or ``RatedResponse``s
        (``regression``); ``eval_pairs``: held-out ``PreferencePair``s instead of ``cfg.eval_data``."""
        self.cfg = cfg
        self.out = Path(cfg.out) if cfg.out else None
        self._train_pairs, self._eval_pairs, self.model = train_pairs, eval_pairs, model
        self.step = 0
        self.history: list[dict] = []

    # -- setup ----------------------------------------------------------------------------------
    def setup(self) -> "RewardModelTrainer":
        from rlhfkit.data import load_pairs
        from rlhfkit.data.reward_labels import load_reward_examples
        from rlhfkit.models.loading import resolve_dtype_name
        from rlhfkit.models.reward_model import RewardModel

        cfg = self.cfg.validate()
        cfg.dtype = resolve_dtype_name(cfg.dtype)
        self.dtype = torch.bfloat16 if cfg.dtype == "bf16" else torch.float32
        loop.seed_everything(cfg.seed)
        if self.model is None:
            self.model = RewardModel.from_backbone(cfg.model, n_heads=cfg.n_heads, seed=cfg.seed)
        self._prepare_model()
        if self._train_pairs is not None:
            examples, source = self._train_pairs, "the training examples"
        else:
            examples, source = load_reward_examples(cfg.data, cfg.loss), cfg.data
        examples = examples[: cfg.limit] if cfg.limit else examples
        if not examples:
            raise ValueError(f"{source}: no training examples")
        self.train_tok = self._tokenize(examples, source)
        eval_pairs = self._eval_pairs
        if eval_pairs is None and cfg.eval_data:
            eval_pairs = load_pairs(cfg.eval_data)
        self.eval_tok = tokenize_reward_pairs(self.model.tokenizer, eval_pairs, cfg.max_length) if eval_pairs else None
        self.weights = torch.tensor([t.weight for t in self.train_tok])
        self.counts = bootstrap_counts(len(self.train_tok), self.model.n_heads, cfg.seed) if cfg.bootstrap else None
        return self

    def _tokenize(self, examples: list, source: str) -> list:
        """Examples -> groups, and the labels the loss needs beside them (``self.labels``)."""
        from rlhfkit.data.reward_labels import RankedResponses, RatedResponse, pairs_as_rankings

        cfg, tok = self.cfg, self.model.tokenizer
        if cfg.loss == "pl" and not isinstance(examples[0], RankedResponses):
            examples = pairs_as_rankings(examples)
        expected = {"pl": RankedResponses, "regression": RatedResponse}.get(cfg.loss)
        if expected is not None and not all(isinstance(e, expected) for e in examples):
            raise ValueError(f"{source}: --loss {cfg.loss} trains on {expected.__name__} examples only")
        if cfg.loss == "bt":
            return tokenize_reward_pairs(tok, examples, cfg.max_length)
        if cfg.loss == "pl":
            self.labels = [e.tier_of for e in examples]  # tier per response, 0 = best
            return tokenize_reward_groups(tok, [(e.prompt, e.responses, e.weight) for e in examples], cfg.max_length)
        self.labels = torch.tensor([[e.score, e.scale_min, e.scale_max] for e in examples], dtype=torch.float64)
        return tokenize_reward_groups(tok, [(e.prompt, [e.response], e.weight) for e in examples], cfg.max_length)

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
        """Packed groups per micro-batch (shortest first), weighted by their total example weight."""
        examples = sorted(indices, key=lambda i: self.train_tok[i].packed_len)
        pad = self.model.tokenizer.pad_token_id
        out = []
        for k in range(0, len(examples), self.cfg.batch_size):
            idx = examples[k : k + self.cfg.batch_size]
            batch = collate_groups([self.train_tok[i] for i in idx], pad, self.cfg.packing)
            out.append(((idx, batch), float(self.weights[idx].sum())))
        return out

    def loss(self, micro) -> tuple[torch.Tensor, dict]:
        """Sum over heads of each head's loss (bootstrap-weighted when ``cfg.bootstrap``); the
        metrics are those of the heads' mean reward with the plain weights."""
        idx, batch = micro
        head_loss, mean_metrics = getattr(self, f"_{self.cfg.loss}_losses")(idx, batch)  # forward
        weights = self.weights[idx]
        loss = None
        for h in range(self.model.n_heads):
            w = weights if self.counts is None else weights * self.counts[idx, h]
            if self.counts is not None and w.sum() <= 0:
                continue  # none of these examples is in head h's resample
            value, _ = head_loss(h, w)
            if self.counts is not None:  # sum_i w_i c_hi l_hi / sum_i w_i (module docstring)
                value = value * (w.sum() / weights.sum())
            loss = value if loss is None else loss + value
        if loss is None:  # no head drew any of these examples: a zero that still has a graph
            loss = sum(p.sum() for p in self.model.head.parameters()) * 0.0
        return loss, {k: v for k, v in mean_metrics.items() if k != "loss"}

    def _bt_losses(self, idx, batch):
        chosen, rejected = self.model.pair_rewards(batch, self.dtype)  # (b, H) per head
        cfg = self.cfg

        def head_loss(h, w):
            return bradley_terry_loss(chosen[:, h], rejected[:, h], label_smoothing=cfg.label_smoothing,
                                      weights=w.to(chosen.device), center_rewards_coef=cfg.center_rewards_coef)

        with torch.no_grad():
            metrics = bradley_terry_loss(chosen.mean(1), rejected.mean(1), weights=self.weights[idx].to(chosen.device))[1]
        return head_loss, metrics

    def _pl_losses(self, idx, batch):
        rewards = self.model.group_rewards(batch, self.dtype)  # (b, K, H)
        tiers = torch.full(rewards.shape[:2], -1, dtype=torch.long)  # (b, K); -1 = no response here
        for row, i in enumerate(idx):
            tiers[row, : len(self.labels[i])] = torch.tensor(self.labels[i])
        tiers = tiers.to(rewards.device)

        def head_loss(h, w):
            return plackett_luce_loss(rewards[:, :, h], tiers, weights=w.to(rewards.device))

        with torch.no_grad():
            metrics = plackett_luce_loss(rewards.mean(2), tiers, weights=self.weights[idx].to(rewards.device))[1]
        return head_loss, metrics

    def _regression_losses(self, idx, batch):
        rewards = self.model.rewards(batch, self.dtype)  # (b, H): one response per group
        score, low, high = self.labels[idx].to(rewards.device, rewards.dtype).unbind(1)  # (b,) each

        def head_loss(h, w):
            return rating_regression_loss(rewards[:, h], score, low, high, weights=w.to(rewards.device))

        with torch.no_grad():
            metrics = rating_regression_loss(rewards.mean(1), score, low, high,
                                             weights=self.weights[idx].to(rewards.device))[1]
        return head_loss, metrics

    def after_step(self, record: dict) -> None:
        unit = {"bt": "pairs", "pl": "rankings", "regression": "ratings"}[self.cfg.loss]
        record[f"{unit}_per_s"] = self.cfg.global_batch / max(1e-9, record["s_per_step"])

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
        weights = loop.gathered_state_dict(self.model)  # sharded (FSDP): the full weights, on rank 0
        if not loop.is_main_process():  # launched distributed: rank 0 writes the folder
            loop.barrier()
            return self.out
        folder = self.model.save(self.out, extra_meta=meta, state_dict=weights)
        loop.barrier()
        return folder


def train_reward_model(cfg: RewardTrainConfig, **kw) -> tuple[Path, dict | None]:
    """setup -> train -> evaluate -> save; returns (output folder, final eval summary)."""
    trainer = RewardModelTrainer(cfg, **kw).setup()
    trainer.train()
    summary = trainer.evaluate(n_boot=2000) if trainer.eval_tok else None
    return trainer.save(summary), summary
