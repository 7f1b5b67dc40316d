"""`rlhfkit loop RECIPE` (the whole RLHF loop, resumable) and `rlhfkit lineage PATH`."""

from __future__ import annotations

import json
import threading
import time
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
    from rlhfkit.trainers.rounds import Loop, read_loop_recipe

    with user_errors():
        cfg = read_loop_recipe(recipe)
        cfg.name = name or cfg.name
        cfg.seed = cfg.seed if seed is None else seed
        cfg.rounds = cfg.rounds if rounds is None else rounds
        cfg.progress = progress
        runner = Loop(cfg, human_feedback=human_feedback(cfg) if cfg.feedback == "humans" else None)
    summary = runner.run()
    last = summary[f"round-{cfg.rounds}"]
    lo, hi = last["ci95"]
    console.print(f"report: {summary['report']}")
    console.print(f"gold win rate of the final policy against the starting one: {last['win_rate']:.3f} "
                  f"(95% CI {lo:.3f}-{hi:.3f}, n={last['n']}; length-controlled {last['lc_win_rate']:.3f}; "
                  f"judge {last['judge']})", highlight=False)


def human_feedback(cfg):
    """For ``feedback: humans``: serve the round's items in the annotation app, print the login
    links, and wait (with a progress bar) until every item has ``labels_per_item`` judgements."""
    settings = {"host": "127.0.0.1", "port": 8000, "annotators": ["annotator-1"], "labels_per_item": 1,
                "timeout_s": 24 * 3600, "poll_s": 2.0, **cfg.humans}

    def collect(items, round_dir: Path):
        import uvicorn

        from rlhfkit.feedback import repo
        from rlhfkit.feedback.app import create_app
        from rlhfkit.feedback.db import open_database
        from rlhfkit.feedback.export import export_items
        from rlhfkit.progress import progress

        database = open_database(str(round_dir / "feedback.db"))
        base = f"http://{settings['host']}:{settings['port']}"
        with database.session() as s:
            project = repo.project_or_create(s, round_dir.name, mode="ranking", overlap=settings["labels_per_item"])
            repo.import_items(s, project, [(it, "loop") for it in items])
            links = []
            for who in settings["annotators"]:
                try:
                    token = repo.new_annotator_token(s, who)
                except repo.NotFound:
                    _, token = repo.add_annotator(s, who)
                links.append((who, f"{base}/login?token={token}"))
            project_id = project.id
        server = uvicorn.Server(uvicorn.Config(create_app(database), host=settings["host"], port=settings["port"],
                                               log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        for who, link in links:
            console.print(f"login link for {who}: {link}")
        need = len(items) * settings["labels_per_item"]
        deadline = time.monotonic() + settings["timeout_s"]
        try:
            with progress(need, "waiting for judgements", enabled=cfg.progress) as advance:
                done = 0
                while done < need:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"only {done} of {need} judgements after {settings['timeout_s']} s; "
                                           "run the same command again to keep waiting")
                    time.sleep(settings["poll_s"])
                    with database.session() as s:
                        labelled = export_items(s, repo.get_project(s, project_id))
                    now = sum(min(len(it.annotations), settings["labels_per_item"]) for it in labelled)
                    advance(n=now - done)
                    done = now
        finally:
            server.should_exit = True
            thread.join(timeout=10)
        return [it for it in labelled if it.annotations]

    return collect


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
        lines = [f"{pad}reward model {path}: {meta['pairs']} pairs from {meta['judgements']} judgements "
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
