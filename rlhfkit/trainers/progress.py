"""A rich progress bar for training loops (a no-op when disabled, e.g. in tests)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator


@contextmanager
def training_progress(total: int, start: int = 0, enabled: bool = True,
                      description: str = "training") -> Iterator[Callable[[dict], None]]:
    """Yields ``advance(metrics)``: one step forward, showing loss/accuracy/speed."""
    if not enabled:
        yield lambda metrics: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}")]
    with Progress(*columns, refresh_per_second=2) as progress:
        task = progress.add_task(description, total=total, completed=start, info="")

        def advance(metrics: dict) -> None:
            keys = ("loss", "accuracy", "eval_accuracy", "pairs_per_s")
            info = " ".join(f"{k}={metrics[k]:.3g}" for k in keys if k in metrics)
            progress.update(task, advance=1, info=info)

        yield advance
