"""`rlhfkit sft`: supervised fine-tuning on completions (chat template, packing)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

RUN_DEFAULTS = {"model": "smollm2-135m", "data": None, "out": "runs/sft", "limit": 0}

app = typer.Typer()  # help: the docstring of sft() below, with its example


@app.callback(invoke_without_command=True)
def sft(
    data: Optional[Path] = typer.Option(None, help="JSONL: {prompt, completion}, {messages}, or preference pairs"),
    model: Optional[str] = typer.Option(None, help="alias (smollm2-135m), HF folder, .gguf, or hub id"),
    out: Optional[Path] = typer.Option(None, help="output HF folder (+ metrics.jsonl)"),
    recipe: Optional[Path] = typer.Option(None, help="YAML recipe; CLI flags override it"),
    lr: Optional[float] = typer.Option(None, help="learning rate (default 2e-5)"),
    epochs: Optional[int] = typer.Option(None, help="passes over the data"),
    max_steps: Optional[int] = typer.Option(None, help="stop after N optimiser steps"),
    batch_size: Optional[int] = typer.Option(None, help="rows per micro-batch"),
    grad_accum: Optional[int] = typer.Option(None, help="micro-batches per optimiser step"),
    max_length: Optional[int] = typer.Option(None, help="max tokens per (packed) row"),
    packing: Optional[bool] = typer.Option(None, "--packing/--no-packing", help="pack short examples into rows"),
    dtype: Optional[str] = typer.Option(None, help="fp32 | bf16 | auto (bf16 only where native)"),
    seed: Optional[int] = typer.Option(None, help="seed"),
    limit: Optional[int] = typer.Option(None, help="use only the first N examples (0: all)"),
    progress: bool = typer.Option(True, help="show a progress bar"),
) -> None:
    """Fine-tune a causal LM on (prompt, completion) examples; writes a HF folder to OUT.

    Example: rlhfkit sft --data sft.jsonl --model smollm2-135m --epochs 1 --out runs/sft
    """
    given = dict(locals())  # the flags, before any other local exists
    from rlhfkit.commands.recipe import merge, read_recipe
    from rlhfkit.data.errors import DataError
    from rlhfkit.models import load_causal_lm
    from rlhfkit.models.sources import ModelSourceError
    from rlhfkit.trainers.sft import SFTConfig, SFTTrainer, read_sft_examples

    cli = {k: (str(v) if isinstance(v, Path) else v) for k, v in given.items() if k not in ("recipe", "progress")}
    try:
        cfg, run = merge(SFTConfig, RUN_DEFAULTS, read_recipe(recipe), cli, recipe)
        if not run["data"]:
            raise ValueError("--data (or 'data:' in the recipe) is required")
        examples = read_sft_examples(run["data"])
        examples = examples[: run["limit"]] if run["limit"] else examples
        policy, tokenizer = load_causal_lm(run["model"], dtype="fp32")
    except (DataError, ModelSourceError, ValueError, FileNotFoundError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    trainer = SFTTrainer(policy, tokenizer, cfg, out_dir=Path(run["out"]), show_progress=progress)
    trainer.setup(examples)
    hist = trainer.train()
    folder = trainer.save()
    typer.echo(f"saved {folder} after {trainer.step} steps; final loss {hist[-1]['loss']:.4f}")
