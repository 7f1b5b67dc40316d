"""The one progress display of the package: a rich bar on stderr for any long pass.

Used by the training loop (one tick per optimiser step, with the step's key metrics), by
scoring passes (reference log-probs, held-out evaluation), by generation and by the CLI. A
disabled bar (tests, ``--no-progress``) costs nothing.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Callable, Iterator

from rich.console import Console

console = Console(stderr=True, soft_wrap=True)

# metrics shown beside a training bar, in this order, when a step reports them
SHOWN_METRICS = ("loss", "rewards/accuracy", "accuracy", "eval_accuracy", "reward/mean", "kl/mean",
                 "pairs_per_s", "s_per_step")


def _info(metrics: dict) -> str:
    return " ".join(f"{k}={metrics[k]:.4g}" for k in SHOWN_METRICS
                    if isinstance(metrics.get(k), (int, float)))


@contextmanager
def progress(total: int, description: str, enabled: bool = True, start: int = 0) -> Iterator[Callable[..., None]]:
    """Yields ``advance(metrics=None, n=1)``: move the bar ``n`` ticks, showing ``metrics``.
    Under a distributed launch (``torchrun``, ``accelerate launch``) only rank 0 draws."""
    if not enabled or os.environ.get("RANK", "0") != "0":
        yield lambda metrics=None, n=1: None
        return
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}")]
    with Progress(*columns, console=console, refresh_per_second=2) as bar:
        task = bar.add_task(description, total=total, completed=start, info="")

        def advance(metrics: dict | None = None, n: int = 1) -> None:
            bar.update(task, advance=n, **({"info": _info(metrics)} if metrics else {}))

        yield advance
