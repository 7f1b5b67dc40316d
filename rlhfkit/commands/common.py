"""Small helpers shared by CLI commands: console, logging, turning errors into messages."""

from __future__ import annotations

import contextlib
import logging
from typing import Iterator

import typer
from rich.logging import RichHandler

from rlhfkit.progress import console, progress  # noqa: F401  (the commands' console and bar)


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_time=False, show_path=False)],
        force=True,
    )
    for noisy in ("httpx", "urllib3", "filelock", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Known bad-input errors become one clear line and exit code 2, never a traceback.
    (ValueError is how configs and data checks refuse bad settings.)"""
    from rlhfkit.data.errors import DataError
    from rlhfkit.models.sources import ModelSourceError

    try:
        yield
    except (DataError, ModelSourceError, FileNotFoundError, ValueError) as err:
        console.print(f"[red]error:[/red] {err}", highlight=False)
        raise typer.Exit(2) from None
