"""`rlhfkit generate`: K samples per prompt from a policy, in our schema, resumable."""

from __future__ import annotations

from pathlib import Path

import typer

from rlhfkit.commands.common import console, progress, user_errors


def partial_path(out: Path) -> Path:
    return out.with_name(out.name + ".partial")


def generate(
    model: str = typer.Option("smollm2-135m", help="alias, local HF folder, .gguf file or hub id"),
    prompts: Path = typer.Option(..., help=".txt (one prompt a line), JSONL with 'prompt', or a preference data file"),
    n: int = typer.Option(4, "--n", min=2, help="responses per prompt"),
    out: Path = typer.Option(..., help="output JSONL in our schema"),
    max_new_tokens: int = typer.Option(128, min=1),
    temperature: float = typer.Option(0.8, min=0.0),
    top_p: float = typer.Option(0.95, min=0.0, max=1.0),
    batch_size: int = typer.Option(8, min=1, help="prompts per batch (each expanded to n samples)"),
    seed: int = typer.Option(0),
    dtype: str = typer.Option("auto", help="fp32, bf16, or auto: bf16 where it runs natively (2x faster), else fp32"),
    limit: int = typer.Option(0, min=0, help="use only the first N prompts (0: all)"),
    resume: bool = typer.Option(True, help="continue from OUT.partial if an earlier run was interrupted"),
) -> None:
    """Sample N responses per prompt, with provenance, into OUT (our schema).

    Example: rlhfkit generate --model smollm2-135m --prompts prompts.txt --n 4 --out samples.jsonl

    Items are appended to OUT.partial as each batch finishes; an interrupted run resumes there
    and OUT appears (atomically) only when every prompt is done.
    """
    from rlhfkit.models import load_causal_lm
    from rlhfkit.rollout.generate import SamplingConfig, generate_items
    from rlhfkit.rollout.prompts import read_prompts
    from rlhfkit.schema import PreferenceItem

    cfg = SamplingConfig(n=n, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                         batch_size=batch_size, seed=seed)
    with user_errors():
        records = read_prompts(prompts)
        if limit:
            records = records[:limit]
        partial = partial_path(out)
        done: set[str] = set()
        if resume and partial.exists():
            for line in partial.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    done.add(PreferenceItem.model_validate_json(line).metadata.get("prompt_id"))
            console.print(f"resuming: {len(done)} prompts already in {partial}")
        elif partial.exists():
            partial.unlink()
        todo = [r for r in records if r.id not in done]
        policy, tokenizer = load_causal_lm(model, dtype=dtype)
    # Seed per resumed position so a resumed run does not repeat the samples already drawn.
    cfg.seed = seed + len(done)
    out.parent.mkdir(parents=True, exist_ok=True)
    with partial.open("a", encoding="utf-8") as sink, \
            progress(len(records), "generating", start=len(records) - len(todo)) as advance:

        def save(item):
            sink.write(item.model_dump_json(exclude_none=True) + "\n")
            sink.flush()

        generate_items(policy, tokenizer, todo, cfg, model_name=str(model), on_item=save,
                       on_batch=lambda k: advance(n=k))
    partial.replace(out)
    count = sum(1 for _ in out.open(encoding="utf-8"))
    console.print(f"wrote {count} items ({n} samples per prompt asked) to {out}")


def summarise(items, stats) -> None:
    from rich.console import Console
    from rich.table import Table

    out = Console()
    for item in items:
        out.rule(f"[bold]{item.prompt_text[:90]}")
        for k, response in enumerate(item.responses):
            text = response.text.replace("\n", " ")
            out.print(f"[cyan]{k + 1}.[/cyan] {text[:220]}{'…' if len(text) > 220 else ''}", highlight=False)
    table = Table(title="generation summary")
    # Short headers keep the table readable in an 80-column terminal.
    for col in ("prompts", "responses", "empty dropped", "new tokens", "tokens/resp",
                "distinct-2", "tokens/s"):
        table.add_column(col, justify="right")
    mean_len = sum(stats.token_counts) / max(1, len(stats.token_counts))
    table.add_row(str(stats.prompts), str(stats.responses), str(stats.dropped_empty), str(stats.new_tokens),
                  f"{mean_len:.1f}", f"{distinct_2(items):.2f}", f"{stats.tokens_per_second:.1f}")
    out.print(table)


def distinct_2(items) -> float:
    """Mean over prompts of unique word bigrams / all bigrams among its samples (diversity)."""
    scores = []
    for item in items:
        grams = [tuple(w[i : i + 2]) for r in item.responses for w in [r.text.split()] for i in range(len(w) - 1)]
        if grams:
            scores.append(len(set(grams)) / len(grams))
    return sum(scores) / len(scores) if scores else 0.0

