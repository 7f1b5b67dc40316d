"""`rlhfkit dpo`: offline preference optimisation (DPO, IPO, cDPO, robust DPO, SimPO, KTO)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

RUN_DEFAULTS = {"model": "smollm2-135m", "data": None, "out": "runs/dpo", "limit": 0, "eval_data": None,
                "eval_limit": 0, "kl_prompts": 32, "kl_max_new_tokens": 64}

app = typer.Typer()  # help: the docstring of dpo() below, with its example


@app.callback(invoke_without_command=True)
def dpo(
    data: Optional[Path] = typer.Option(None, help="preference pairs (our JSONL, TRL keys, Anthropic HH)"),
    model: Optional[str] = typer.Option(None, help="alias (smollm2-135m), HF folder, .gguf, or hub id"),
    loss: Optional[str] = typer.Option(None, help="dpo | ipo | cdpo | robust | simpo | kto"),
    beta: Optional[float] = typer.Option(None, help="inverse temperature (default 0.1)"),
    out: Optional[Path] = typer.Option(None, help="output folder: HF model, metrics.jsonl, eval.json"),
    recipe: Optional[Path] = typer.Option(None, help="YAML recipe; CLI flags override it"),
    lr: Optional[float] = typer.Option(None, help="learning rate (default 1e-6)"),
    epochs: Optional[int] = typer.Option(None, help="passes over the data"),
    max_steps: Optional[int] = typer.Option(None, help="stop after N optimiser steps"),
    batch_size: Optional[int] = typer.Option(None, help="pairs per micro-batch"),
    grad_accum: Optional[int] = typer.Option(None, help="micro-batches per optimiser step"),
    max_length: Optional[int] = typer.Option(None, help="max tokens of prompt + completion"),
    dtype: Optional[str] = typer.Option(None, help="fp32 | bf16 | auto (bf16 only where native)"),
    label_smoothing: Optional[float] = typer.Option(None, help="cdpo/robust label-flip rate"),
    simpo_gamma: Optional[float] = typer.Option(None, help="SimPO target margin"),
    lora_r: Optional[int] = typer.Option(None, help="LoRA rank (0: full fine-tuning)"),
    save_every: Optional[int] = typer.Option(None, help="checkpoint every N steps (resumable)"),
    seed: Optional[int] = typer.Option(None, help="seed"),
    limit: Optional[int] = typer.Option(None, help="use only the first N training pairs (0: all)"),
    eval_data: Optional[Path] = typer.Option(None, help="held-out pairs: implicit-reward accuracy and KL"),
    eval_limit: Optional[int] = typer.Option(None, help="use only the first N held-out pairs (0: all)"),
    kl_prompts: Optional[int] = typer.Option(None, help="held-out prompts sampled for the KL estimate (0: skip)"),
    progress: bool = typer.Option(True, help="show a progress bar"),
) -> None:
    """Train a policy on preference pairs; writes a HF folder (safetensors) to OUT.

    Example: rlhfkit dpo --data pairs.jsonl --model smollm2-135m --loss dpo --beta 0.1 --out runs/dpo

    The reference log-probs are computed once before training and cached in OUT; re-running the
    same command resumes from OUT/checkpoint.pt when --save-every was set. Precedence of
    settings: defaults < --recipe YAML < flags.
    """
    given = dict(locals())  # the flags, before any other local exists
    from rlhfkit.commands.recipe import merge, read_recipe
    from rlhfkit.data.errors import DataError
    from rlhfkit.trainers.dpo import DPOConfig

    cli = {k: (str(v) if isinstance(v, Path) else v) for k, v in given.items() if k not in ("recipe", "progress")}
    try:
        cfg, run = merge(DPOConfig, RUN_DEFAULTS, read_recipe(recipe), cli, recipe)
        cfg.validate()
    except (DataError, ValueError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    if not run["data"]:
        typer.echo("error: --data (or 'data:' in the recipe) is required", err=True)
        raise typer.Exit(2)
    run_dpo(cfg, run, progress)


def run_dpo(cfg, run: dict, progress: bool = True) -> dict:
    import torch

    from rlhfkit.data import load_pairs
    from rlhfkit.data.errors import DataError
    from rlhfkit.models import load_causal_lm
    from rlhfkit.models.sources import ModelSourceError
    from rlhfkit.trainers.dpo import DPOTrainer

    out = Path(run["out"])
    try:
        if cfg.loss == "kto":  # thumbs up/down as well as pairs
            from rlhfkit.data import read_items
            from rlhfkit.trainers.dpo import unpaired_feedback

            pairs = unpaired_feedback(read_items(run["data"], strict=False))
        else:
            pairs = load_pairs(run["data"])
        pairs = pairs[: run["limit"]] if run["limit"] else pairs
        eval_pairs = load_pairs(run["eval_data"]) if run["eval_data"] else None
        if eval_pairs and run["eval_limit"]:
            eval_pairs = eval_pairs[: run["eval_limit"]]
        model, tokenizer = load_causal_lm(run["model"], dtype="fp32")  # fp32 masters; bf16 = autocast
    except (DataError, ModelSourceError, FileNotFoundError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    trainer = DPOTrainer(model, tokenizer, cfg, out_dir=out, show_progress=progress)
    trainer.setup(pairs, eval_pairs)
    trainer.train()
    folder = trainer.save()
    report = {"train_pairs": len(trainer.examples), "steps": trainer.step,
              "final": trainer.history[-1] if trainer.history else None}
    if eval_pairs:
        report["eval"] = trainer.evaluate()
        if run["kl_prompts"]:
            from rlhfkit.trainers.dpo_eval import kl_to_reference

            reference, _ = load_causal_lm(run["model"], dtype="fp32")
            if cfg.dtype == "bf16" and cfg.snap_bf16:
                from rlhfkit.trainers.loop import snap_to_bf16_grid

                snap_to_bf16_grid(reference)  # the reference the run actually used
            prompts = [e.prompt_ids for e in trainer.eval_examples[: run["kl_prompts"]]]
            policy, _ = load_causal_lm(folder, dtype="fp32")  # what was saved is what is measured
            report["kl"] = kl_to_reference(policy, reference, tokenizer, prompts, run["kl_max_new_tokens"],
                                           seed=cfg.seed, dtype=torch.bfloat16 if cfg.dtype == "bf16" else torch.float32)
    (folder / "eval.json").write_text(json.dumps(report, indent=2))
    typer.echo(json.dumps({k: v for k, v in report.items() if k != "final"}, indent=2))
    return report
