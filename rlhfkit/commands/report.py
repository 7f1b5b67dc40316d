"""`rlhfkit report RUN_DIR`: one self-contained HTML page from a run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from rlhfkit.commands.common import user_errors


def report(
    run_dir: Path = typer.Argument(..., help="a run folder (reward, SFT, DPO, online RL) or a loop folder of round-K/"),
    out: Optional[Path] = typer.Option(None, "--out", help="HTML file to write (default RUN_DIR/report.html)"),
) -> None:
    """Write an HTML report of a run (curves, over-optimisation, win rates, samples, annotators,
    reward-model diagnostics) and print its path. Plots are embedded; it works offline.

    Example: rlhfkit report runs/dpo-hh --out dpo-hh.html

    File formats: docs/run-format.md. Sections whose files are missing say which file they need.
    """
    from rlhfkit.commands.common import console
    from rlhfkit.eval.report import build_report

    with user_errors():
        try:
            path = build_report(run_dir, out)
        except ModuleNotFoundError as err:
            if err.name != "matplotlib":
                raise
            console.print("[red]error:[/red] the report draws its plots with matplotlib: "
                          "pip install 'rlhfkit[eval]'", highlight=False)
            raise typer.Exit(2) from None
    typer.echo(str(path))
