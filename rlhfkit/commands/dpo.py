"""`rlhfkit dpo`: offline preference optimisation (DPO, IPO, cDPO, robust DPO, SimPO, KTO)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from rlhfkit.commands.options import config_command
from rlhfkit.trainers.config import DPOConfig

HELP = """Train a policy on preference pairs; writes a HF folder (safetensors) to OUT.

Example: rlhfkit dpo --data pairs.jsonl --model smollm2-135m --loss dpo --beta 0.1 --out runs/dpo

The reference log-probs are computed once before training and cached in OUT; re-running the
same command resumes from OUT/checkpoint when --save-every was set. Precedence of settings:
defaults < --recipe YAML < flags.
"""


def run_dpo(cfg: DPOConfig) -> dict:
    """Load data and model, train, save, then evaluate on the held-out pairs (eval.json)."""
    from rlhfkit.commands.common import console, user_errors
    from rlhfkit.data import load_pairs
    from rlhfkit.models import load_causal_lm
    from rlhfkit.trainers.dpo import DPOTrainer

    out = Path(cfg.out)
    with user_errors():
        cfg.validate()
        if not cfg.data:
            raise ValueError("--data (or 'data:' in the recipe) is required")
        if cfg.loss == "kto":  # thumbs up/down as well as pairs
            from rlhfkit.data import read_items
            from rlhfkit.trainers.dpo import unpaired_feedback

            pairs = unpaired_feedback(read_items(cfg.data, strict=False))
        else:
            pairs = load_pairs(cfg.data)
        pairs = pairs[: cfg.limit] if cfg.limit else pairs
        eval_pairs = load_pairs(cfg.eval_data) if cfg.eval_data else None
        if eval_pairs and cfg.eval_limit:
            eval_pairs = eval_pairs[: cfg.eval_limit]
        model, tokenizer = load_causal_lm(cfg.model, dtype="fp32")  # fp32 masters; bf16 = autocast
        trainer = DPOTrainer(model, tokenizer, cfg, out_dir=out)
        trainer.setup(pairs, eval_pairs)
    trainer.train()
    folder = trainer.save()
    report = {"train_pairs": len(trainer.examples), "steps": trainer.step,
              "final": trainer.history[-1] if trainer.history else None}
    if eval_pairs:
        report["eval"] = trainer.evaluate()
        if cfg.kl_prompts:
            report["kl"] = _kl_report(cfg, folder, trainer)
    from rlhfkit.data.atomic import atomic_write

    with atomic_write(folder / "eval.json") as fh:
        fh.write(json.dumps(report, indent=2) + "\n")
    console.print(f"saved {folder} after {trainer.step} steps")
    typer.echo(json.dumps({k: v for k, v in report.items() if k != "final"}, indent=2))
    return report


def _kl_report(cfg: DPOConfig, folder: Path, trainer) -> dict:
    """KL(saved policy || the reference the run used) on held-out prompts."""
    import torch

    from rlhfkit.eval.policy_eval import kl_to_reference, reference_policy
    from rlhfkit.models import load_causal_lm

    reference, tokenizer = reference_policy(cfg.model, cfg.dtype, cfg.snap_bf16)
    policy, _ = load_causal_lm(folder, dtype="fp32")  # what was saved is what is measured
    prompts = [e.prompt_ids for e in trainer.eval_examples[: cfg.kl_prompts]]
    dtype = torch.bfloat16 if cfg.dtype == "bf16" else torch.float32
    return kl_to_reference(policy, reference, tokenizer, prompts, cfg.kl_max_new_tokens, seed=cfg.seed, dtype=dtype)


app = typer.Typer()
app.callback(invoke_without_command=True, help=HELP)(config_command(DPOConfig, run_dpo, "dpo"))
