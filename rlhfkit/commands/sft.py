"""`rlhfkit sft`: supervised fine-tuning on completions (chat template, packing)."""

from __future__ import annotations

from pathlib import Path

import typer

from rlhfkit.commands.options import config_command
from rlhfkit.trainers.config import SFTConfig

HELP = """Fine-tune a causal LM on (prompt, completion) examples; writes a HF folder to OUT.

Example: rlhfkit sft --data sft.jsonl --model smollm2-135m --epochs 1 --out runs/sft

Data: {prompt, completion}, {messages} (the last assistant message is the completion), or any
preference file (the chosen answer is the completion). Precedence: defaults < --recipe < flags.
"""


def run_sft(cfg: SFTConfig) -> Path:
    from rlhfkit.commands.common import console, user_errors
    from rlhfkit.models import load_causal_lm
    from rlhfkit.trainers.sft import SFTTrainer, read_sft_examples

    with user_errors():
        cfg.validate()
        if not cfg.data:
            raise ValueError("--data (or 'data:' in the recipe) is required")
        examples = read_sft_examples(cfg.data)
        examples = examples[: cfg.limit] if cfg.limit else examples
        policy, tokenizer = load_causal_lm(cfg.model, dtype="fp32")
        trainer = SFTTrainer(policy, tokenizer, cfg, out_dir=Path(cfg.out)).setup(examples)
    trainer.train()
    folder = trainer.save()
    final = trainer.history[-1]["loss"] if trainer.history else float("nan")
    console.print(f"saved {folder} after {trainer.step} steps; final loss {final:.4f}")
    return folder


app = typer.Typer()
app.callback(invoke_without_command=True, help=HELP)(config_command(SFTConfig, run_sft, "sft"))
