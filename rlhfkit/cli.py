"""The `rlhfkit` command line: one command (group) per pipeline stage, each defined in
rlhfkit/commands/. Heavy libraries are imported inside the commands, so `--help` is instant."""

from __future__ import annotations

import os

import typer

from rlhfkit.commands import data, dpo, feedback, ilf, loop, reward, rl, sft
from rlhfkit.commands.common import setup_logging
from rlhfkit.commands.generate import generate
from rlhfkit.commands.quickstart import quickstart
from rlhfkit.commands.report import report

app = typer.Typer(
    name="rlhfkit",
    help="RLHF end to end: generate responses, collect human feedback, train reward models, "
    "optimise policies, audit the result.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def main(verbose: bool = typer.Option(False, "--verbose", "-v", help="debug logging")) -> None:
    setup_logging(verbose)
    if not verbose:  # our own progress bars say what is happening; keep transformers' quiet
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


app.add_typer(data.app, name="data")
app.add_typer(reward.app, name="reward")
app.add_typer(sft.app, name="sft")
app.add_typer(dpo.app, name="dpo")
app.add_typer(rl.app, name="rl")
app.add_typer(ilf.app, name="ilf")
app.command("best-of-n", help=rl.best_of_n_command.__doc__)(rl.best_of_n_command)
app.add_typer(feedback.app, name="feedback")
app.add_typer(feedback.annotators_app, name="annotators")
app.command("serve", help=feedback.serve.__doc__)(feedback.serve)
app.command(help=generate.__doc__)(generate)
app.command(help=quickstart.__doc__)(quickstart)
app.command(help=report.__doc__)(report)
app.command("loop", help=loop.loop.__doc__)(loop.loop)
app.command("lineage", help=loop.lineage.__doc__)(loop.lineage)

if __name__ == "__main__":
    app()
