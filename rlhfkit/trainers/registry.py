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

from rlhfkit.trainers.config import DPOConfig, RewardTrainConfig, SFTConfig


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


TRAINERS: dict[str, TrainerEntry] = {
    entry.name: entry
    for entry in (
        TrainerEntry("dpo", DPOConfig, _build_dpo, "AutoModelForCausalLM"),
        TrainerEntry("sft", SFTConfig, _build_sft, "AutoModelForCausalLM"),
        TrainerEntry("reward", RewardTrainConfig, _build_reward, "AutoModelForSequenceClassification"),
    )
}
