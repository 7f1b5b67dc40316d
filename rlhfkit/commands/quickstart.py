"""`rlhfkit quickstart`: the deepest part of the pipeline that runs end to end today, on the
embedded SmolLM2-135M-Instruct: sample several responses per prompt for the shipped prompt set
and summarise them. Later stages (feedback, reward model, policy optimisation) join as they land."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import typer

from rlhfkit.commands.common import console, progress, user_errors


def quickstart(
    model: str = typer.Option("smollm2-135m", help="alias, local HF folder or .gguf file"),
    n: int = typer.Option(4, "--n", min=2, help="responses per prompt"),
    max_new_tokens: int = typer.Option(64, min=1),
    dtype: str = typer.Option("auto", help="fp32, bf16, or auto (bf16 only where the CPU/GPU runs it natively)"),
    out: Path = typer.Option(Path("runs/quickstart/samples.jsonl"), help="where the samples are written"),
    seed: int = typer.Option(0),
) -> None:
    """Generate N responses for each shipped prompt with the embedded model and summarise them.

    Example: rlhfkit quickstart --n 4
    """
    import time

    from rlhfkit.commands.generate import summarise
    from rlhfkit.data import write_items
    from rlhfkit.models import load_causal_lm
    from rlhfkit.rollout.generate import GenerationStats, SamplingConfig, generate_items
    from rlhfkit.rollout.prompts import read_prompts

    prompts_file = importlib.resources.files("rlhfkit") / "assets" / "prompts.jsonl"
    with user_errors():
        t0 = time.perf_counter()
        from rlhfkit.models.loading import resolve_dtype_name

        dtype = resolve_dtype_name(dtype)
        console.print(f"loading {model} ({dtype}); the first run converts the GGUF once (~15-30 s)")
        policy, tokenizer = load_causal_lm(model, dtype=dtype)
        console.print(f"loaded in {time.perf_counter() - t0:.1f} s")
        records = read_prompts(Path(str(prompts_file)))
    cfg = SamplingConfig(n=n, max_new_tokens=max_new_tokens, batch_size=4, seed=seed)
    stats = GenerationStats()
    with progress(len(records), "generating") as advance:
        items = generate_items(policy, tokenizer, records, cfg, model_name=model, stats=stats,
                               on_batch=lambda k: advance(n=k))
    write_items(out, items)
    summarise(items, stats)
    console.print(f"samples written to {out} (our schema; next: `rlhfkit data stats` / the annotation app)")
