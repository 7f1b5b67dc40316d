"""Small helpers shared by CLI commands: console, progress bars, turning errors into messages."""

from __future__ import annotations

import contextlib
import logging
from typing import Iterator

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(stderr=True, soft_wrap=True)


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_time=False, show_path=False)],
        force=True,
    )
    for noisy in ("httpx", "urllib3", "filelock", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Known bad-input errors become one clear line and exit code 2, never a traceback."""
    from rlhfkit.data.errors import DataError
    from rlhfkit.models.sources import ModelSourceError

    try:
        yield
    except (DataError, ModelSourceError, FileNotFoundError) as err:
        console.print(f"[red]error:[/red] {err}", highlight=False)
        raise typer.Exit(2) from None
