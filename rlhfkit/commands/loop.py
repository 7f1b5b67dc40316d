"""`rlhfkit loop RECIPE` (the whole RLHF loop, resumable) and `rlhfkit lineage PATH`."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from rlhfkit.commands.common import console, user_errors


def loop(
    recipe: str = typer.Argument(..., help="loop recipe YAML, or builtin:quickstart for the shipped one"),
    name: str = typer.Option(None, help="run name (default: the recipe's); the run goes to OUT/NAME"),
    seed: int = typer.Option(None, help="override the recipe's seed"),
    rounds: int = typer.Option(None, help="override the recipe's number of rounds"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="show progress bars"),
) -> None:
    """Rounds of generate -> feedback -> reward model -> policy -> evaluate, then a report.

    Example: rlhfkit loop recipes/quickstart.yaml

    Everything goes under OUT/NAME/round-K/. Run the same command again after an interruption
    (kill -9 included): completed phases are skipped and the interrupted one is redone.
    """
    from rlhfkit.commands.human_feedback import HumanFeedbackError, human_feedback, humans_settings
    from rlhfkit.trainers.rounds import Loop, read_loop_recipe

    with user_errors():
        cfg = read_loop_recipe(recipe)
        cfg.name = name or cfg.name
        cfg.seed = cfg.seed if seed is None else seed
        cfg.rounds = cfg.rounds if rounds is None else rounds
        cfg.progress = progress
        humans = (human_feedback(humans_settings(cfg.humans, recipe), show_progress=progress)
                  if cfg.feedback == "humans" else None)
        runner = Loop(cfg, human_feedback=humans)
    try:
        summary = runner.run()
    except HumanFeedbackError as err:  # a timeout or no server: one clear line, the labels stay saved
        console.print(f"[red]error:[/red] {err}", highlight=False)
        raise typer.Exit(1) from None
    last = summary[f"round-{cfg.rounds}"]
    lo, hi = last["ci95"]
    console.print(f"report: {summary['report']}")
    console.print(f"gold win rate of the final policy against the starting one: {last['win_rate']:.3f} "
                  f"(95% CI {lo:.3f}-{hi:.3f}, n={last['n']}; length-controlled {last['lc_win_rate']:.3f}; "
                  f"judge {last['judge']})", highlight=False)


def lineage(path: Path = typer.Argument(..., help="a policy or reward-model folder written by `rlhfkit loop`")) -> None:
    """Print the chain behind a model: which judgements trained which reward model, which trained which policy.

    Example: rlhfkit lineage runs/quickstart/round-2/policy
    """
    with user_errors():
        for line in lineage_lines(path):
            typer.echo(line)


def lineage_lines(path: Path, depth: int = 0) -> list[str]:
    pad = "  " * depth
    meta_path = Path(path) / "lineage.json"
    if not meta_path.exists():
        return [f"{pad}{path}: base model (no lineage.json)"]
    meta = json.loads(meta_path.read_text())
    if meta["kind"] == "reward_model":
        unit = {"pl": "rankings", "regression": "ratings"}.get(meta.get("loss", "bt"), "pairs")  # what the loss trained on
        lines = [f"{pad}reward model {path}: {meta['pairs']} {unit} from {meta['judgements']} judgements "
                 f"(sha256 {meta['judgements_sha256'][:16]}...) in " + ", ".join(meta["judgement_files"])]
        if meta.get("parent_reward_model"):  # continued from an earlier round's model
            lines += lineage_lines(Path(meta["parent_reward_model"]), depth + 1)
        return lines
    data = (f"{meta['pairs']} pairs (sha256 {meta['pairs_sha256'][:16]}...)" if "pairs" in meta
            else f"{len(meta['critique_hashes'])} critiques (sha256 {meta['critiques_sha256'][:16]}...) in "
            f"{meta['critiques_file']} and {len(meta['edit_hashes'])} edits" if "critique_hashes" in meta  # ilf
            else f"{meta.get('prompts', '?')} prompts")
    lines = [f"{pad}policy {path}: {meta['algo']} on {data}, from"]
    if "reward_model" in meta:  # an ILF policy has none
        lines += lineage_lines(Path(meta["reward_model"]), depth + 1)
    lines += lineage_lines(Path(meta["parent"]), depth + 1) if Path(meta["parent"]).exists() else [
        f"{pad}  start: {meta['parent']}"]
    return lines
