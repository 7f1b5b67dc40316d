"""`rlhfkit quickstart`: the whole loop on the embedded SmolLM2-135M-Instruct, in minutes on a CPU.

It runs ``rlhfkit loop builtin:quickstart`` (rlhfkit/assets/quickstart.yaml): two rounds of
sampling answers to shipped prompts, simulated annotators ranking them against a stated gold
preference, a reward model trained on their labels, online iterative DPO against it, and the
gold win rate of the final policy over the starting one with a 95% CI, then an HTML report.
"""

from __future__ import annotations

import typer


def quickstart(
    seed: int = typer.Option(0, help="seed of the whole run"),
    name: str = typer.Option(None, help="run name (default quickstart); the run goes to runs/NAME"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="show progress bars"),
) -> None:
    """Run the RLHF loop on the embedded SmolLM2-135M-Instruct and print the report path and win rate.

    Example: rlhfkit quickstart
    """
    from rlhfkit.commands.loop import loop

    loop("builtin:quickstart", name=name, seed=seed, rounds=None, progress=progress)
