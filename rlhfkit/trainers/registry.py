"""The registered trainers: name -> config class and a builder.

Recipes name their trainer (``trainer: dpo``); the CLI and the invariance harness
(``tests/trainers/test_invariance.py``) look trainers up here, so a new trainer gets its recipe
loading and its accumulation / resume / saving tests by registering.

``build(cfg, pairs, out)`` returns a set-up trainer for preference pairs (``PreferencePair``s);
``cfg.model`` names the model folder. Trainers whose data are not pairs (SFT) take what they
need from the pairs (the chosen answer as the completion).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from rlhfkit.trainers.config import ALGOS, DPOConfig, RewardTrainConfig, RLConfig, SFTConfig


@dataclass(frozen=True)
class TrainerEntry:
    name: str
    config: type
    build: Callable[[Any, list, Path | None], Any]
    saved_as: str  # the transformers Auto class the output folder loads with


def _build_dpo(cfg: DPOConfig, pairs: list, out: Path | None):
    from rlhfkit.models import load_causal_lm
    from rlhfkit.trainers.dpo import DPOTrainer

    model, tokenizer = load_causal_lm(cfg.model, dtype="fp32")
    return DPOTrainer(model, tokenizer, cfg, out_dir=out).setup(pairs)


def _build_sft(cfg: SFTConfig, pairs: list, out: Path | None):
    from rlhfkit.models import load_causal_lm
    from rlhfkit.trainers.sft import SFTExample, SFTTrainer

    model, tokenizer = load_causal_lm(cfg.model, dtype="fp32")
    examples = [SFTExample(p.prompt, p.chosen) for p in pairs]
    return SFTTrainer(model, tokenizer, cfg, out_dir=out).setup(examples)


def _build_reward(cfg: RewardTrainConfig, pairs: list, out: Path | None):
    from rlhfkit.trainers.reward_model import RewardModelTrainer

    cfg.out = str(out) if out else ""
    return RewardModelTrainer(cfg, train_pairs=pairs).setup()


def online_trainer_class(algo: str):
    if algo == "grpo":
        from rlhfkit.trainers.grpo import GRPOTrainer as cls
    elif algo == "rloo":
        from rlhfkit.trainers.rloo import RLOOTrainer as cls
    elif algo == "ppo":
        from rlhfkit.trainers.ppo import PPOTrainer as cls
    elif algo == "raft":
        from rlhfkit.trainers.raft import RAFTTrainer as cls
    else:
        raise ValueError(f"unknown algo {algo!r}; choose {', '.join(ALGOS)}")
    return cls


def build_online(cfg: RLConfig, prompts=None, out: Path | None = None, policy=None, tokenizer=None, reward_fn=None):
    """An online trainer for ``cfg.algo``: the policy from ``cfg.model`` (or given), prompts from
    ``cfg.data`` (or a list of prompts / ``PreferencePair``s), the reward from ``cfg.reward``."""
    from rlhfkit.models import load_causal_lm
    from rlhfkit.rewards.base import load_reward
    from rlhfkit.trainers.online import prompt_set, read_prompt_set

    cfg.validate()
    if policy is None:
        policy, tokenizer = load_causal_lm(cfg.model, dtype="fp32")
    if reward_fn is None:
        if not cfg.reward:
            raise ValueError("--reward is required: a reward-model folder or module:function")
        reward_fn = load_reward(cfg.reward, normalize=cfg.reward_normalize)
    if prompts is None:
        if not cfg.data:
            raise ValueError("--prompts (or 'data:' in the recipe) is required")
        prompts = read_prompt_set(cfg.data, tokenizer, cfg.max_length)
    elif not hasattr(prompts, "prompt_ids"):
        prompts = prompt_set([getattr(p, "prompt", p) for p in prompts], tokenizer, cfg.max_length)
    if cfg.limit:
        prompts.prompts, prompts.prompt_ids, prompts.metadata = (
            prompts.prompts[: cfg.limit], prompts.prompt_ids[: cfg.limit], prompts.metadata[: cfg.limit])
    return online_trainer_class(cfg.algo)(policy, tokenizer, cfg, reward_fn, prompts, out).setup()


def _online_entry(algo: str) -> "TrainerEntry":
    def build(cfg: RLConfig, pairs: list, out: Path | None):
        cfg.algo = algo
        return build_online(cfg, pairs, out)

    return TrainerEntry(algo, RLConfig, build, "AutoModelForCausalLM")


TRAINERS: dict[str, TrainerEntry] = {
    entry.name: entry
    for entry in (
        TrainerEntry("dpo", DPOConfig, _build_dpo, "AutoModelForCausalLM"),
        TrainerEntry("sft", SFTConfig, _build_sft, "AutoModelForCausalLM"),
        TrainerEntry("reward", RewardTrainConfig, _build_reward, "AutoModelForSequenceClassification"),
        *(_online_entry(algo) for algo in ALGOS),
    )
}
