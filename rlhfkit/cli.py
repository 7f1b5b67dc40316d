"""The rlhfkit command line: one thin sub-app per area (heavy imports live inside commands)."""

import typer

from rlhfkit.commands import feedback

app = typer.Typer(help="rlhfkit: RLHF end to end.", no_args_is_help=True)
app.add_typer(feedback.app, name="feedback")
app.add_typer(feedback.annotators_app, name="annotators")
app.command("serve")(feedback.serve)

if __name__ == "__main__":
    app()
