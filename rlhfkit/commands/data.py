"""`rlhfkit data ...`: validate, convert and describe preference data files."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from rlhfkit.commands.common import console, user_errors

app = typer.Typer(help="Validate, convert and describe preference data (our schema, TRL formats, Anthropic HH).",
                  no_args_is_help=True)

FORMAT_HELP = "rlhfkit | trl-pairs | trl-implicit | trl-unpaired | hh (auto-detected when reading)"


@app.command()
def validate(
    file: Path = typer.Argument(..., help="JSONL (or .json array) file to check"),
    fmt: str = typer.Option("auto", "--format", help=FORMAT_HELP),
    strict: bool = typer.Option(False, help="treat content flaws (empty answers, HH prefix mismatches) as errors"),
) -> None:
    """Check every record and report each problem with its line and field.

    Example: rlhfkit data validate ../shared/data/hh-harmless/train.jsonl

    Exit code 0: usable (content flaws are listed; training skips them with a warning);
    1: malformed records, or any flaw with --strict.
    """
    from rlhfkit.data import scan

    with user_errors():
        report = scan(file, fmt)
    for err in report.errors:
        tag = "[yellow]flaw[/yellow]" if err.skippable else "[red]error[/red]"
        console.print(f"{tag} ({err.kind}) {err}", highlight=False)
    n_ok, n_skip, n_bad = len(report.items), len(report.skipped), len(report.fatal)
    console.print(
        f"{file}: format {report.format or '?'}; {n_ok} valid records, "
        f"{n_skip} with content flaws (skipped in training), {n_bad} malformed",
        highlight=False,
    )
    if n_bad or (strict and n_skip):
        raise typer.Exit(1)


@app.command()
def convert(
    src: Path = typer.Argument(..., help="input file, any supported format"),
    dst: Path = typer.Argument(..., help="output JSONL file (or a folder with --dataset)"),
    to: str = typer.Option(..., "--to", help=FORMAT_HELP),
    src_format: str = typer.Option("auto", "--from", help="input format; auto-detected by default"),
    dataset: bool = typer.Option(False, "--dataset", help="write a Hugging Face datasets folder (save_to_disk)"),
    strict: bool = typer.Option(False, help="refuse input with content flaws instead of skipping them"),
) -> None:
    """Convert preference data between formats (written atomically).

    Example: rlhfkit data convert hh/train.jsonl train.trl.jsonl --to trl-pairs
    """
    from rlhfkit.data import convert as convert_file

    with user_errors():
        if dataset:
            from rlhfkit.data.hf import items_to_dataset
            from rlhfkit.data.io import read_lined_items

            lined = read_lined_items(src, src_format, strict=strict)
            ds = items_to_dataset([it for _, it in lined], fmt=to, lines=[n for n, _ in lined], path=str(src))
            ds.save_to_disk(str(dst))
            n = len(ds)
        else:
            n = convert_file(src, dst, to=to, fmt=src_format, strict=strict)
    console.print(f"wrote {n} records in format {to} to {dst}", highlight=False)


@app.command()
def stats(
    file: Path = typer.Argument(..., help="preference data file, any supported format"),
    fmt: str = typer.Option("auto", "--format", help=FORMAT_HELP),
) -> None:
    """Counts, length distribution of chosen vs rejected answers, and the share of pairs where
    the longer answer was chosen (the length-bias check).

    Example: rlhfkit data stats ../shared/data/hh-harmless/test.jsonl
    """
    from rlhfkit.data import scan
    from rlhfkit.data.stats import pair_stats
    from rlhfkit.schema import item_to_pairs

    with user_errors():
        report = scan(file, fmt)
    if report.fatal:
        console.print(f"[red]error:[/red] {report.fatal[0]}", highlight=False)
        raise typer.Exit(2)
    items = [item for _, item in report.items]
    pairs = [p for item in items for p in item_to_pairs(item)]
    s = pair_stats(pairs)
    table = Table(title=f"{file} ({report.format})")
    table.add_column("")
    table.add_column("chosen", justify="right")
    table.add_column("rejected", justify="right")
    for label, c, r in (("chars", s.chosen_chars, s.rejected_chars), ("words", s.chosen_words, s.rejected_words)):
        table.add_row(f"mean {label}", f"{c.mean:.1f}", f"{r.mean:.1f}")
        table.add_row(f"p10 / median / p90 {label}", f"{c.p10:.0f} / {c.median:.0f} / {c.p90:.0f}",
                      f"{r.p10:.0f} / {r.median:.0f} / {r.p90:.0f}")
    out = Console()
    out.print(table)
    out.print(f"records: {len(report.items) + len(report.errors)}; items: {len(items)}; "
              f"pairs: {s.pairs}; responses: {sum(len(i.responses) for i in items)}; "
              f"annotations: {sum(len(i.annotations) for i in items)}; "
              f"skipped (content flaws): {len(report.skipped)}")
    out.print(f"longer answer chosen (by characters): {100 * s.longer_chosen_share:.1f}% "
              f"({s.longer_chosen} of {s.pairs}; {s.equal_length} of equal length)")


@app.command()
def arithmetic(
    out: Path = typer.Argument(..., help="prompts JSONL to write ({id, prompt, answer, template} a line)"),
    split: str = typer.Option("train", help="train | test (disjoint by construction)"),
    n: int = typer.Option(200, help="number of problems"),
    seed: int = typer.Option(0, help="seed of the generator"),
) -> None:
    """Write generated arithmetic word problems, a verifiable task scored by exact match.

    Example: rlhfkit data arithmetic data/arith-train.jsonl --split train --n 500
    """
    from rlhfkit.rewards.arithmetic import write_problems

    with user_errors():
        path = write_problems(out, split, n, seed)
    console.print(f"wrote {n} {split} problems to {path} (reward: rlhfkit.rewards.rules:numeric_exact_match)")
