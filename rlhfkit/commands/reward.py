"""`rlhfkit reward ...`: train and evaluate reward models on preference pairs.

Registered in cli.py with ``app.add_typer(reward.app, name="reward")``. torch and
transformers are imported inside the commands, so ``rlhfkit --help`` stays instant; the
``train`` flags are generated from ``RewardTrainConfig``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from rlhfkit.commands.common import console, user_errors
from rlhfkit.commands.options import config_command
from rlhfkit.trainers.config import RewardTrainConfig

app = typer.Typer(help="Train and evaluate reward models on human preference labels.", no_args_is_help=True)


def _write_json(path: Path, data: dict) -> None:
    from rlhfkit.data import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as fh:
        fh.write(json.dumps(data, indent=2) + "\n")


TRAIN_HELP = """Train a reward model: Bradley-Terry on pairs (--loss bt, the default), Plackett-Luce on
K-wise rankings with ties (--loss pl) or regression on ratings (--loss regression); --n-heads N
--bootstrap trains an ensemble whose heads see their own resamples. Precedence: defaults <
--recipe YAML < flags.

Example: rlhfkit reward train --data hh/train.jsonl --eval hh/test.jsonl --model smollm2-135m --out runs/rm
"""


def run_train(cfg) -> None:
    from rlhfkit.trainers.reward_model import train_reward_model

    with user_errors():
        if not cfg.data:
            raise typer.BadParameter("give --data (or `data:` in the recipe)")
        out_dir, summary = train_reward_model(cfg)
    console.print(f"saved reward model to {out_dir}")
    if summary:
        _write_json(out_dir / "eval.json", summary)
        lo, hi = summary["accuracy_ci95"]
        console.print(f"eval accuracy {summary['accuracy']:.3f} (95% CI {lo:.3f}-{hi:.3f}), ECE {summary['ece']:.3f}")
        if "ensemble" in summary:
            console.print(ensemble_line(summary["ensemble"]), highlight=False)


app.command("train", help=TRAIN_HELP)(config_command(RewardTrainConfig, run_train, "reward"))


@app.command("eval")
def evaluate(
    model: str = typer.Option(..., "--model", help="a reward model folder (from `reward train` or any HF seq-cls), "
                              "or a folder whose sub-folders are separately trained members (an ensemble)"),
    data: str = typer.Option(..., "--data", help="held-out pairs, any supported format"),
    out: Optional[Path] = typer.Option(None, "--out", help="JSON summary path (default MODEL/eval-<data>.json)"),
    max_length: Optional[int] = typer.Option(None, help="max tokens (default: the one the model was trained with)"),
    batch_size: int = typer.Option(16, help="pairs per batch"),
    dtype: str = typer.Option("fp32", help="fp32 or bf16 (autocast)"),
    n_boot: int = typer.Option(2000, help="bootstrap resamples for the 95% CI"),
) -> None:
    """Accuracy (bootstrap 95% CI, ties wrong), ECE of sigmoid(margin), length-bias split; for an
    ensemble (several heads or member folders) also its ECE and the accuracy on the least- vs
    most-disputed quartile of pairs. JSON out.

    Example: rlhfkit reward eval --model runs/rm --data hh/test.jsonl
    """
    from rlhfkit.data import load_pairs
    from rlhfkit.eval.reward_eval import evaluate_members
    from rlhfkit.rewards.ensemble import load_members

    with user_errors():
        if not Path(model).is_dir():
            raise FileNotFoundError(f"{model}: no such model folder")
        members = load_members(model, dtype="fp32")
        pairs = load_pairs(data)
        if not pairs:
            raise ValueError(f"{data}: no preference pairs to evaluate on")
        length = max_length or int(members[0].meta.get("max_length", 512))
        summary = evaluate_members(members, pairs, length, batch_size, dtype=dtype, n_boot=n_boot)
    summary.update(model=str(model), data=str(data), max_length=length)
    path = out or Path(model) / f"eval-{Path(data).stem}.json"
    _write_json(path, summary)
    lo, hi = summary["accuracy_ci95"]
    lb = summary["length_bias"]
    console.print(
        f"accuracy {summary['accuracy']:.3f} (95% CI {lo:.3f}-{hi:.3f}) on {summary['n_pairs']} pairs; "
        f"ECE {summary['ece']:.3f}; chosen longer: {lb['chosen_longer']['accuracy']}, "
        f"not longer: {lb['chosen_not_longer']['accuracy']}; written to {path}", highlight=False)
    if "ensemble" in summary:
        console.print(ensemble_line(summary["ensemble"]), highlight=False)
    typer.echo(json.dumps(summary))


def ensemble_line(e: dict) -> str:
    """One line on an ensemble's calibration and whether its disagreement predicts error."""
    line = (f"ensemble of {e['members']}: ECE {e['ece']:.3f} ({e['ece_bins']} bins; "
            f"mean member probability {e['ece_mean_probability']:.3f})")
    if e["least_disputed"] is None:
        return line + "; under 4 pairs, no disagreement quartiles"
    least, most = e["least_disputed"], e["most_disputed"]
    rel = e["by_relative_disagreement"]
    return (line + f"; accuracy on the least-disputed quartile {least['accuracy']:.3f} (n={least['n']}), "
            f"most-disputed {most['accuracy']:.3f} (n={most['n']}); by std/|mean margin|: "
            f"{rel['least_disputed']['accuracy']:.3f} vs {rel['most_disputed']['accuracy']:.3f}")
