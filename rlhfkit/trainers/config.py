"""Trainer configurations: one small dataclass per trainer on a shared base, with help text on
every field. CLI flags (``rlhfkit.commands.options``) and recipe keys are these field names, so a
setting has one name everywhere. Torch-free, so the command line can build its flags instantly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SCHEDULES = ("constant", "linear", "cosine")
REPORTERS = ("none", "tensorboard", "wandb", "mlflow")
SHARDING = ("none", "fsdp")
LOSSES = ("dpo", "ipo", "cdpo", "robust", "simpo", "kto")
REWARD_LOSSES = ("bt", "pl", "regression")


def _f(default, help: str, **extra):
    """A config field with its help text (shown by ``--help``; CLI flags are generated from it)."""
    return field(default=default, metadata={"help": help, **extra})


@dataclass
class TrainConfig:
    """Settings every trainer shares, with one name per thing across trainers."""

    model: str = _f("smollm2-135m", "policy or backbone: alias, HF folder, .gguf file or hub id")
    data: str = _f("", "training data file (formats: see `rlhfkit data convert --help`)")
    eval_data: str = _f("", "held-out data for evaluation ('' = none)", flag="--eval-data", aliases=["--eval"])
    out: str = _f("runs/run", "output folder: model, metrics.jsonl, checkpoint/")
    limit: int = _f(0, "use only the first N training examples (0 = all)")
    lr: float = _f(1e-5, "peak learning rate (AdamW)")
    weight_decay: float = _f(0.0, "AdamW weight decay")
    lr_schedule: str = _f("linear", "learning-rate decay after warm-up: constant | linear | cosine")
    warmup_steps: int = _f(0, "linear warm-up steps (overrides warmup_ratio when > 0)")
    warmup_ratio: float = _f(0.0, "share of all steps used for linear warm-up")
    max_grad_norm: float = _f(1.0, "gradient clipping norm; 0 = off")
    batch_size: int = _f(4, "examples per micro-batch")
    grad_accum: int = _f(1, "micro-batches per optimiser step")
    epochs: float = _f(1.0, "passes over the data")
    max_steps: int = _f(0, "optimiser steps; overrides epochs when > 0")
    max_length: int = _f(512, "max tokens of prompt + completion")
    dtype: str = _f("fp32", "fp32 | bf16 (autocast, fp32 master weights) | auto (bf16 only where native)")
    lora_r: int = _f(0, "LoRA rank (0 = full fine-tuning); merged into the saved model")
    lora_alpha: float = _f(16.0, "LoRA alpha")
    seed: int = _f(0, "seed for initialisation and data order")
    save_every: int = _f(0, "checkpoint every N steps (0 = never; the final model is always saved)")
    log_every: int = _f(1, "write a metrics line every N steps")
    eval_every: int = _f(0, "evaluate every N steps (0 = only at the end)")
    resume: bool = _f(True, "continue from OUT/checkpoint when one exists")
    progress: bool = _f(True, "show a progress bar")
    report_to: str = _f("none", "experiment tracker besides metrics.jsonl: none | tensorboard | wandb | mlflow "
                        "(runs under OUT; the library is imported only when chosen)")
    shard: str = _f("none", "none | fsdp: launched with several processes, shard the trained model's parameters, "
                    "gradients and AdamW state over them (FSDP2, one unit per decoder layer); `accelerate launch "
                    "--config_file configs/accelerate/fsdp.yaml` turns it on too")

    def validate(self) -> "TrainConfig":
        if self.lr_schedule not in SCHEDULES:
            raise ValueError(f"unknown lr_schedule {self.lr_schedule!r}; choose {', '.join(SCHEDULES)}")
        if self.dtype not in ("fp32", "bf16", "auto"):
            raise ValueError(f"unknown dtype {self.dtype!r}; choose fp32, bf16 or auto")
        if self.report_to not in REPORTERS:
            raise ValueError(f"unknown report_to {self.report_to!r}; choose {', '.join(REPORTERS)}")
        if self.report_to != "none":  # say so before hours of set-up, not when the loop starts
            import importlib.util

            if importlib.util.find_spec(self.report_to) is None:
                raise ValueError(f"report_to={self.report_to} needs the {self.report_to} package: "
                                 f"pip install {self.report_to} (or report_to=none)")
        if self.shard not in SHARDING:
            raise ValueError(f"unknown shard {self.shard!r}; choose {', '.join(SHARDING)}")
        if self.batch_size < 1 or self.grad_accum < 1:
            raise ValueError("batch_size and grad_accum must be >= 1")
        return self

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.grad_accum


@dataclass
class DPOConfig(TrainConfig):
    out: str = _f("runs/dpo", "output folder: HF model, metrics.jsonl, eval.json, checkpoint/")
    lr: float = _f(1e-6, "peak learning rate (AdamW)")
    loss: str = _f("dpo", "dpo | ipo | cdpo | robust | simpo | kto")
    beta: float = _f(0.1, "inverse temperature (IPO: tau; SimPO: reward scale)")
    label_smoothing: float = _f(0.1, "label-flip rate eps for cdpo and robust")
    simpo_gamma: float = _f(0.5, "SimPO target reward margin")
    desirable_weight: float = _f(1.0, "KTO weight of thumbs-up examples")
    undesirable_weight: float = _f(1.0, "KTO weight of thumbs-down examples")
    snap_bf16: bool = _f(True, "bf16: snap weights to the bf16 grid before the reference")
    packing: bool = _f(True, "run [prompt|chosen|rejected] as one row (the prompt computed once)")
    ref_batch_size: int = _f(16, "pairs per batch of the reference pass and of evaluation")
    eval_limit: int = _f(0, "use only the first N held-out pairs (0 = all)")
    kl_prompts: int = _f(32, "held-out prompts sampled for the KL(policy || reference) estimate (0 = skip)")
    kl_max_new_tokens: int = _f(64, "tokens sampled per prompt for the KL estimate")

    def validate(self) -> "DPOConfig":
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; choose from {', '.join(LOSSES)}")
        super().validate()
        return self


@dataclass
class SFTConfig(TrainConfig):
    out: str = _f("runs/sft", "output folder: HF model, metrics.jsonl, checkpoint/")
    lr: float = _f(2e-5, "peak learning rate (AdamW)")
    batch_size: int = _f(4, "rows per micro-batch")
    max_length: int = _f(512, "max tokens per row (examples are cut, keeping the start)")
    packing: bool = _f(True, "pack several short examples into one row")


@dataclass
class ILFConfig(SFTConfig):
    """Imitation learning from language feedback (``rlhfkit ilf``): for each critique, sample
    ``refinements`` answers conditioned on it, keep the one ``scorer`` rates best, fine-tune on
    them with the SFT trainer; ``rounds`` times. The SFT fields are the fine-tuning phase's."""

    data: str = _f("", "critiques: ILF triples JSONL {prompt, response, critique} "
                   "(`rlhfkit feedback export --format ilf`)", flag="--critiques", aliases=["--data"])
    edits: str = _f("", "edits as SFT examples {prompt, completion} (`rlhfkit feedback export --format sft`), "
                    "trained on directly in every round ('' = none)")
    out: str = _f("runs/ilf", "output folder: HF model, refinements.jsonl, lineage.json, metrics.jsonl, "
                  "round-K/ for earlier rounds")
    scorer: str = _f("", "selects the refinement: a reward-model folder, module:function (a rule), or "
                     "judge:BASE_URL#MODEL (an OpenAI-compatible chat endpoint)")
    refinements: int = _f(4, "refinements sampled per critique (M)")
    rounds: int = _f(1, "refine -> select -> fine-tune rounds (K); later rounds refine with the fine-tuned policy")
    max_new_tokens: int = _f(128, "max tokens per refinement")
    temperature: float = _f(0.7, "sampling temperature of the refinements")
    top_p: float = _f(1.0, "nucleus sampling of the refinements (1 = off)")
    refine_batch_size: int = _f(8, "critiques per sampling call (each sampled M times)")

    def validate(self) -> "ILFConfig":
        super().validate()
        if self.refinements < 1 or self.rounds < 1 or self.refine_batch_size < 1:
            raise ValueError("refinements, rounds and refine_batch_size must be >= 1")
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be >= 1")
        return self


@dataclass
class RewardTrainConfig(TrainConfig):
    out: str = _f("runs/rm", "output folder (a transformers-loadable model)")
    max_length: int = _f(512, "tokens per prompt+response; prompts are cut from the left")
    batch_size: int = _f(8, "examples (pairs, rankings or ratings) per micro-batch")
    loss: str = _f("bt", "bt (Bradley-Terry on pairs) | pl (Plackett-Luce on K-wise rankings with ties, "
                   "one row prompt | r1 | ... | rK each) | regression (squared error on scalar ratings). "
                   "Mixed files: bt and pl use rankings and pairwise choices (bt splits a ranking into its "
                   "pairs; pl keeps it whole and reads a pair as a ranking of 2); regression uses ratings "
                   "only; other labels are left out with a warning (docs/reward-models.md)")
    bootstrap: bool = _f(False, "train each head on its own bootstrap resample of the training examples "
                         "(seeded by seed and head), so an ensemble's spread reflects the data, not only "
                         "the initialisation")
    lr: float = _f(2e-5, "peak learning rate (AdamW)")
    warmup_ratio: float = _f(0.05, "share of all steps used for linear warm-up")
    lr_schedule: str = _f("cosine", "learning-rate decay after warm-up: constant | linear | cosine")
    lora_alpha: float = _f(32.0, "LoRA alpha")
    log_every: int = _f(10, "write a metrics line every N steps")
    # no square brackets in help texts: typer's rich help reads them as markup and drops them
    packing: bool = _f(True, "run prompt, chosen, rejected (or a ranking's K responses) as one row, the prompt "
                       "computed once")
    n_heads: int = _f(1, "reward heads on the shared backbone (an ensemble when > 1)")
    freeze_layers: int = _f(0, "freeze the embeddings and the first N decoder layers")
    label_smoothing: float = _f(0.0, "Bradley-Terry label smoothing in [0, 0.5]")
    center_rewards_coef: float = _f(0.0, "penalty on (r_c + r_r)^2 keeping rewards centred")
    eval_batch_size: int = _f(16, "pairs per evaluation batch")

    def validate(self) -> "RewardTrainConfig":
        if self.loss not in REWARD_LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; choose {', '.join(REWARD_LOSSES)}")
        if self.n_heads < 1:
            raise ValueError(f"n_heads must be >= 1, got {self.n_heads}")
        super().validate()
        return self


ALGOS = ("grpo", "rloo", "ppo", "raft")


@dataclass
class RLConfig(TrainConfig):
    """Online RL (``rlhfkit rl``): rollout -> score -> advantages -> loss -> step -> log.

    ``batch_size`` counts prompts (each with ``group_size`` samples) per micro-batch, so one
    rollout holds ``batch_size * grad_accum`` prompts. Fields marked (ppo) or (raft) are read by
    that algorithm only.
    """

    model: str = _f("smollm2-135m", "policy: alias, HF folder, .gguf file or hub id", flag="--policy", aliases=["--model"])
    data: str = _f("", "prompts: .txt (one a line) or JSONL {prompt, id?, ...}; extra fields reach the "
                   "reward as metadata", flag="--prompts", aliases=["--data"])
    out: str = _f("runs/rl", "output folder: HF model, metrics.jsonl, samples/, checkpoint/")
    algo: str = _f("grpo", "grpo | rloo | ppo | raft")
    reward: str = _f("", "reward: a reward-model folder, module:function, or (in a recipe) a list of "
                     "{source, weight, kwargs}")
    reward_normalize: str = _f("none", "per-rollout reward normalisation: none | center | whiten")
    lr: float = _f(1e-6, "peak learning rate (AdamW)")
    batch_size: int = _f(2, "prompts per micro-batch (each with group_size samples, one packed row)")
    epochs: float = _f(1.0, "passes over the prompts")
    max_length: int = _f(512, "max prompt tokens (longer prompts are cut from the left)")
    group_size: int = _f(8, "samples per prompt (G)")
    max_new_tokens: int = _f(64, "max tokens sampled per completion")
    temperature: float = _f(1.0, "sampling temperature (the policy's log-probs use the same)")
    top_p: float = _f(1.0, "nucleus sampling (1 = off)")
    top_k: int = _f(0, "top-k sampling (0 = off)")
    kl_coef: float = _f(0.04, "weight of the KL anchor to the reference model (beta)")
    kl_estimator: str = _f("auto", "k1 | k2 | k3 (rlhfkit.losses.kl states each one's bias and gradient); "
                           "auto = k3 in the loss, k1 in the reward")
    kl_placement: str = _f("auto", "where the KL anchor goes: loss (per token) | reward (subtracted from it); "
                           "auto = the algorithm's own (grpo, raft: loss; ppo, rloo: reward)")
    kl_target: float = _f(0.0, "(ppo) adaptive KL controller target per sequence; 0 = fixed kl_coef")
    kl_horizon: int = _f(10000, "(ppo) adaptive KL controller horizon")
    clip_eps: float = _f(0.2, "PPO ratio clip epsilon")
    ppo_epochs: int = _f(1, "optimiser steps on each rollout (1 = on-policy)")
    aggregation: str = _f("sequence_mean", "loss aggregation: token_mean | sequence_mean | constant (Dr. GRPO)")
    advantage_scale: str = _f("std", "(grpo) divide group-centred rewards by the group std | none (Dr. GRPO)")
    vf_coef: float = _f(0.1, "(ppo) weight of the value loss")
    gamma: float = _f(1.0, "(ppo) discount")
    lam: float = _f(0.95, "(ppo) GAE lambda")
    raft_keep: float = _f(0.25, "(raft) share of each prompt's samples kept for fine-tuning (the best)")
    sample_every: int = _f(1, "write the rollout's completions to samples/ every N rollouts (0 = never)")
    save_policy_every: int = _f(0, "save the policy as OUT/checkpoints/step-N/ every N steps (0 = never); "
                                "the over-optimisation audit scores these")

    def validate(self) -> "RLConfig":
        super().validate()
        if self.algo not in ALGOS:
            raise ValueError(f"unknown algo {self.algo!r}; choose {', '.join(ALGOS)}")
        if self.kl_placement not in ("auto", "loss", "reward"):
            raise ValueError(f"unknown kl_placement {self.kl_placement!r}; choose auto, loss or reward")
        if self.kl_estimator not in ("auto", "k1", "k2", "k3"):
            raise ValueError(f"unknown kl_estimator {self.kl_estimator!r}; choose auto, k1, k2 or k3")
        if self.group_size < 1 or self.ppo_epochs < 1:
            raise ValueError("group_size and ppo_epochs must be >= 1")
        if self.algo in ("grpo", "rloo") and self.group_size < 2:
            raise ValueError(f"{self.algo} needs group_size >= 2: its baseline is the other samples")
        if not 0 < self.raft_keep <= 1:
            raise ValueError("raft_keep must be in (0, 1]")
        return self
