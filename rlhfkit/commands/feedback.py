"""`rlhfkit feedback ...`, `rlhfkit annotators ...` and `rlhfkit serve`: the annotation app's CLI.

Nothing here imports torch at module level; only `feedback rank` may, when it builds a
reward-model ranker (``load_ranker``). The feedback layer receives the built ranker callable.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="Human feedback: import items, export judgements, rank by disagreement.", no_args_is_help=True)
annotators_app = typer.Typer(help="Manage annotators of the feedback app.", no_args_is_help=True)

DB_OPT = typer.Option("feedback.db", "--db", help="SQLite path or a postgresql+psycopg:// URL")


def _fail(msg: str) -> None:
    typer.secho(f"error: {msg}", fg="red", err=True)
    raise typer.Exit(2)


def load_ranker(spec: str):
    """Build the ranker ``(items) -> list[float]`` that ``--ranker SPEC`` names:

    * ``module:attr`` or ``path/to/file.py:attr``: attr is the ranker callable (a user plugin);
    * a directory with ``ranker.py`` defining ``rank(items)``;
    * a reward-model ensemble directory: ``rlhfkit.rewards.ensemble.load_disagreement_ranker``.
    Raises ``RankerError`` with the reason.
    """
    import importlib

    from rlhfkit.feedback.ranker import RankerError

    def from_file(path: Path, attr: str):
        import importlib.util

        spec_ = importlib.util.spec_from_file_location(f"_rlhfkit_ranker_{path.stem}", path)
        if spec_ is None or spec_.loader is None:
            raise RankerError(f"cannot import ranker file {path}")
        module = importlib.util.module_from_spec(spec_)
        spec_.loader.exec_module(module)
        if not hasattr(module, attr):
            raise RankerError(f"{path} defines no {attr!r}")
        return getattr(module, attr)

    path = Path(spec)
    if path.is_dir():
        if (path / "ranker.py").exists():
            return from_file(path / "ranker.py", "rank")
        from rlhfkit.rewards.ensemble import load_disagreement_ranker  # needs torch: only here

        try:
            return load_disagreement_ranker(path)
        except ValueError as err:
            raise RankerError(f"{spec} has no ranker.py, and {err}") from None
    if ":" not in spec:
        raise RankerError(f"--ranker {spec!r}: expected a directory, module:function or file.py:function")
    target, attr = spec.rsplit(":", 1)
    if target.endswith(".py"):
        return from_file(Path(target), attr)
    try:
        module = importlib.import_module(target)
    except ImportError as e:
        raise RankerError(f"--ranker {spec!r}: cannot import {target}: {e}") from None
    if not hasattr(module, attr):
        raise RankerError(f"--ranker {spec!r}: {target} has no {attr!r}")
    return getattr(module, attr)


def _open(db: str, synchronous: str = "FULL"):
    from rlhfkit.feedback.db import Database

    return Database(db, synchronous=synchronous)


@app.command("import")
def import_cmd(
    path: Path = typer.Argument(..., help="items: rlhfkit JSONL (e.g. `rlhfkit generate` output), TRL pairs, HH, "
                                "or a Label Studio / Argilla export (their annotations become judgements)"),
    project: str = typer.Option(..., "--project", "-p", help="project name (created if missing)"),
    db: str = DB_OPT,
    mode: str = typer.Option("ranking", help="ranking | pairwise | rating (1-7 per response) | binary (thumbs per "
                             "response) | arena (anonymous battles; responses name their policy in provenance.model); "
                             "new projects only"),
    overlap: int = typer.Option(3, help="judgements wanted per item from distinct annotators"),
    lease_seconds: int = typer.Option(900, help="how long an item handed out stays reserved"),
    gold_rate: float = typer.Option(0.0, help="share of served items drawn from gold items"),
    daily_cap: Optional[int] = typer.Option(None, help="most judgements per annotator per UTC day"),
    gold: bool = typer.Option(False, "--gold", help="these items are gold: their first annotation is the answer"),
    empty_responses: str = typer.Option(
        "flag", help="flag: import items with an empty response (annotators see '(empty response)'); "
        "skip: leave them out, list their lines, import the rest"),
) -> None:
    """Import items into a project; annotations they carry are imported as judgements of the
    named annotators (with their source), counted in stats and exports.

    Example: rlhfkit feedback import gen.jsonl -p helpful --db feedback.db
    """
    from rlhfkit.data import DataError
    from rlhfkit.feedback import repo
    from rlhfkit.feedback.items_io import ItemsFileError, read_items_file

    if empty_responses not in ("flag", "skip"):
        _fail(f"--empty-responses must be flag or skip, not {empty_responses!r}")
    try:
        read = read_items_file(path, empty=empty_responses)
        items = read.items
        database = _open(db)
        with database.session() as s:
            p = repo.project_or_create(s, project, mode=mode, overlap=overlap, lease_seconds=lease_seconds,
                                       gold_rate=gold_rate, daily_cap=daily_cap)
            if gold:
                for item, src in items:
                    try:
                        repo.gold_answer_of(item)
                    except repo.Invalid as e:
                        raise ItemsFileError(path, int(src.rsplit(":", 1)[1]), str(e)) from None
            result = repo.import_items(s, p, items, gold=gold)
    except (DataError, ItemsFileError, repo.FeedbackError) as e:
        _fail(str(e))
    for line in read.skipped:
        typer.echo(f"skipped (empty response): {line}", err=True)
    flagged = sum(1 for it, _ in items if it.metadata.get("empty_responses"))
    typer.echo(f"project {project!r}: added {result.added} items, {result.skipped} already present"
               + (f", {result.annotations} existing judgements imported" if result.annotations else "")
               + (f", {flagged} with an empty response flagged" if flagged else "")
               + (f", {len(read.skipped)} skipped for an empty response" if read.skipped else ""))


@app.command("export")
def export_cmd(
    project: str = typer.Option(..., "--project", "-p"),
    out: Path = typer.Option(..., "--out", "-o", help="output JSONL (written atomically)"),
    format: str = typer.Option("rlhfkit", "--format", "-f",
                               help="rlhfkit | trl-pairs | hh | trl-unpaired (thumbs) | labelstudio | argilla | "
                                    "sft (edits) | edit-pairs (edited > original) | ilf (critique triples); "
                                    "a .json output is one JSON array"),
    db: str = DB_OPT,
    include_gold: bool = typer.Option(False, help="also export judgements of gold items"),
    adjudicated: str = typer.Option("prefer", help="prefer: a reviewed item exports its adjudicated label "
                                    "(originals in metadata); ignore: export the annotators' judgements"),
    dataset: bool = typer.Option(False, "--dataset", help="write a Hugging Face datasets folder (save_to_disk) "
                                 "with a README.md dataset card (annotators, agreement, these settings)"),
    split: str = typer.Option("train", help="split name of the --dataset folder"),
) -> None:
    """Export judgements with provenance.  Example: rlhfkit feedback export -p helpful -f trl-pairs -o pairs.jsonl

    Language feedback: -f sft (prompt, edited response), -f edit-pairs (edited > original,
    pair_kind "edit"), -f ilf (prompt, response, critique) for `rlhfkit ilf`."""
    from rlhfkit.feedback import repo
    from rlhfkit.feedback.export import FORMATS, export_file

    if format not in FORMATS:
        _fail(f"--format must be one of {', '.join(FORMATS)}")
    if adjudicated not in ("prefer", "ignore"):
        _fail(f"--adjudicated must be prefer or ignore, not {adjudicated!r}")
    if dataset:
        from rlhfkit.data import DataError
        from rlhfkit.feedback.hf_export import HF_FORMATS, export_hf_dataset

        if format not in HF_FORMATS:
            _fail(f"--dataset writes one of {', '.join(HF_FORMATS)}, not {format!r}")
        try:
            with _open(db).read() as s:
                from rlhfkit import __version__

                info = export_hf_dataset(s, repo.project_by_name(s, project), out, format, split, include_gold,
                                         adjudicated, tool_version=__version__)
        except (repo.FeedbackError, DataError, ValueError) as e:
            _fail(str(e))
        typer.echo(f"wrote {info['rows']} rows ({split} split) and a dataset card to {out}/")
        return
    try:
        with _open(db).session() as s:
            n = export_file(s, repo.project_by_name(s, project), format, out, include_gold, adjudicated)
    except repo.FeedbackError as e:
        _fail(str(e))
    typer.echo(f"wrote {n} lines to {out}")


@app.command("rank")
def rank_cmd(
    project: str = typer.Option(..., "--project", "-p"),
    ranker: str = typer.Option(..., "--ranker", help="reward-model ensemble dir, dir with ranker.py, or module:function"),
    db: str = DB_OPT,
) -> None:
    """Score items by disagreement and serve the most disputed first.  Example: rlhfkit feedback rank -p helpful --ranker runs/rm"""
    from rlhfkit.feedback.ranker import RankerError, score_project

    try:
        n = score_project(_open(db), project, load_ranker(ranker))
    except RankerError as e:
        _fail(str(e))
    typer.echo(f"scored {n} items of {project!r}; they are now served by disagreement")


@app.command("stats")
def stats_cmd(project: str = typer.Option(..., "--project", "-p"), db: str = DB_OPT) -> None:
    """Print a project's progress, agreement and per-annotator statistics as JSON.  Example: rlhfkit feedback stats -p helpful"""
    from rlhfkit.feedback import repo
    from rlhfkit.feedback.stats import project_stats

    try:
        with _open(db).session() as s:
            typer.echo(json.dumps(project_stats(s, repo.project_by_name(s, project)), indent=2))
    except repo.FeedbackError as e:
        _fail(str(e))


@app.command("members")
def members_cmd(
    project: str = typer.Option(..., "--project", "-p"),
    add: list[str] = typer.Option([], "--add", help="annotator to let in (repeat); the first makes the project members-only"),
    remove: list[str] = typer.Option([], "--remove", help="annotator to take out (repeat)"),
    db: str = DB_OPT,
) -> None:
    """Show or change who may work on a project.  Example: rlhfkit feedback members -p helpful --add alice --add bob"""
    from rlhfkit.feedback import projects, repo

    try:
        with _open(db).session() as s:
            p = repo.project_by_name(s, project)
            names = projects.set_members(s, p, add, remove)
            restricted = p.members_only
    except repo.FeedbackError as e:
        _fail(str(e))
    who = ", ".join(names) if names else "nobody"
    typer.echo(f"{project}: members-only, members: {who}" if restricted else f"{project}: open to every annotator")


def _set_archived(project: str, db: str, archived: bool) -> None:
    from rlhfkit.feedback import projects, repo

    try:
        with _open(db).session() as s:
            projects.update_project(s, repo.project_by_name(s, project), archived=archived)
    except repo.FeedbackError as e:
        _fail(str(e))


@app.command("archive")
def archive_cmd(project: str = typer.Option(..., "--project", "-p"), db: str = DB_OPT) -> None:
    """Hide a project from annotators; its data stays and export still works.  Example: rlhfkit feedback archive -p helpful"""
    _set_archived(project, db, True)
    typer.echo(f"{project} archived (hidden from annotators; `rlhfkit feedback unarchive` brings it back)")


@app.command("unarchive")
def unarchive_cmd(project: str = typer.Option(..., "--project", "-p"), db: str = DB_OPT) -> None:
    """Show an archived project to its annotators again.  Example: rlhfkit feedback unarchive -p helpful"""
    _set_archived(project, db, False)
    typer.echo(f"{project} is active again")


@app.command("delete")
def delete_cmd(
    project: str = typer.Option(..., "--project", "-p"),
    db: str = DB_OPT,
    yes: bool = typer.Option(False, "--yes", help="do not ask for confirmation"),
) -> None:
    """Delete a project with all its items and judgements (asks first).  Example: rlhfkit feedback delete -p old"""
    from rlhfkit.feedback import projects, repo

    try:
        database = _open(db)
        with database.read() as s:
            p = repo.project_by_name(s, project)
            stats = projects.content_counts(s, p)
        if not yes:
            typer.confirm(f"Delete project {project!r} with {stats['items']} items and {stats['judgements']} "
                          "judgements? This cannot be undone (`rlhfkit feedback archive` only hides it)", abort=True)
        with database.session() as s:
            counts = projects.delete_project(s, repo.project_by_name(s, project))
    except repo.FeedbackError as e:
        _fail(str(e))
    typer.echo(f"deleted {project!r}: {counts['items']} items, {counts['judgements']} judgements")


@app.command("guidelines")
def guidelines_cmd(
    project: str = typer.Option(..., "--project", "-p"),
    text: Optional[Path] = typer.Option(None, "--text", help="guidelines as a text/markdown file"),
    examples: Optional[Path] = typer.Option(None, "--examples", help="JSON list of {prompt, responses, answer, why}"),
    db: str = DB_OPT,
) -> None:
    """Set a project's guidelines and worked examples, shown before an annotator's first item and under "?".
    Example: rlhfkit feedback guidelines -p helpful --text guide.md --examples examples.json"""
    from rlhfkit.feedback import projects, repo

    changes = {}
    try:
        if text is not None:
            changes["instructions"] = text.read_text(encoding="utf-8")
        if examples is not None:
            try:
                changes["examples"] = json.loads(examples.read_text(encoding="utf-8"))
            except json.JSONDecodeError as e:
                _fail(f"{examples}, line {e.lineno}: not valid JSON ({e.msg})")
    except OSError as e:
        _fail(str(e))
    if not changes:
        _fail("give --text and/or --examples")
    try:
        with _open(db).session() as s:
            p = projects.update_project(s, repo.project_by_name(s, project), **changes)
            n = len(p.examples or [])
    except repo.FeedbackError as e:
        _fail(f"{examples or text}: {e}")
    typer.echo(f"{project}: guidelines updated ({n} worked examples)")


@app.command("arena-merge")
def arena_merge_cmd(
    files: list[Path] = typer.Argument(..., help="one generation file per policy or checkpoint (rlhfkit schema)"),
    out: Path = typer.Option(..., "--out", "-o", help="arena items (JSONL), for `feedback import --mode arena`"),
) -> None:
    """Put the answers of several policies to the same prompts side by side, for an arena project.
    Example: rlhfkit feedback arena-merge runs/step100/gen.jsonl runs/step200/gen.jsonl -o arena.jsonl"""
    from rlhfkit.data import DataError, read_items
    from rlhfkit.data.atomic import atomic_write
    from rlhfkit.feedback.arena import merge_policy_items

    if len(files) < 2:
        _fail("give at least two generation files (one per policy)")
    try:
        items, left_out = merge_policy_items([(f.stem if f.stem != "gen" else f.parent.name, read_items(f))
                                              for f in files])
    except (DataError, ValueError) as e:
        _fail(str(e))
    with atomic_write(out) as fh:
        fh.writelines(it.model_dump_json(exclude_none=True) + "\n" for it in items)
    typer.echo(f"wrote {len(items)} arena items to {out}" + (f"; {left_out} prompts answered by one policy only"
                                                             " left out" if left_out else ""))


@app.command("leaderboard")
def leaderboard_cmd(
    project: str = typer.Option(..., "--project", "-p"),
    db: str = DB_OPT,
    rounds: int = typer.Option(200, help="bootstrap resamples for the 95% intervals"),
    seed: int = typer.Option(0, help="bootstrap seed"),
) -> None:
    """Bradley-Terry leaderboard of an arena project.  Example: rlhfkit feedback leaderboard -p arena"""
    from rlhfkit.feedback import repo
    from rlhfkit.feedback.arena_pages import arena_board

    try:
        with _open(db).read() as s:
            board = arena_board(s, repo.project_by_name(s, project).id, rounds, seed)
    except repo.FeedbackError as e:
        _fail(str(e))
    typer.echo(f"{board['battles']} battles, 95% intervals from {rounds} bootstrap resamples")
    typer.echo("rank\tmodel\tscore\t95% interval\tbattles\twins\tties\tlosses")
    for m in board["models"]:
        typer.echo(f"{m['rank']}\t{m['model']}\t{m['score']:.0f}\t{m['ci_low']:.0f}-{m['ci_high']:.0f}\t"
                   f"{m['battles']}\t{m['wins']}\t{m['ties']}\t{m['losses']}")


@app.command("admin-token")
def admin_token_cmd(db: str = DB_OPT, base_url: str = typer.Option("http://127.0.0.1:8000", help="server address")) -> None:
    """Make a new admin token (the old one stops working) and print the admin login link.  Example: rlhfkit feedback admin-token --db feedback.db"""
    from rlhfkit.feedback import repo

    with _open(db).session() as s:
        token = repo.rotate_admin_token(s)
    typer.echo(f"admin login: {base_url.rstrip('/')}/login?token={token}")


@annotators_app.command("add")
def annotators_add(
    name: str = typer.Argument(..., help="display name, unique"),
    db: str = DB_OPT,
    base_url: str = typer.Option("http://127.0.0.1:8000", help="server address used in the link"),
    role: str = typer.Option("annotator", help="annotator | reviewer (also adjudicates disputed items)"),
) -> None:
    """Create an annotator and print their secret login link.  Example: rlhfkit annotators add alice --db feedback.db"""
    from rlhfkit.feedback import repo

    try:
        with _open(db).session() as s:
            _a, token = repo.add_annotator(s, name, role=role)
    except repo.FeedbackError as e:
        _fail(str(e))
    typer.echo(f"{base_url.rstrip('/')}/login?token={token}")


@annotators_app.command("new-link")
def annotators_new_link(
    name: str = typer.Argument(..., help="an existing annotator"),
    db: str = DB_OPT,
    base_url: str = typer.Option("http://127.0.0.1:8000", help="server address used in the link"),
) -> None:
    """Give an annotator a new login link (the old one stops working).  Example: rlhfkit annotators new-link alice"""
    from rlhfkit.feedback import repo

    try:
        with _open(db).session() as s:
            token = repo.new_annotator_token(s, name)
    except repo.FeedbackError as e:
        _fail(str(e))
    typer.echo(f"{base_url.rstrip('/')}/login?token={token}")


@annotators_app.command("deactivate")
def annotators_deactivate(name: str = typer.Argument(...), db: str = DB_OPT) -> None:
    """Stop an annotator's link from working (their judgements are kept).  Example: rlhfkit annotators deactivate alice"""
    from rlhfkit.feedback import repo

    try:
        with _open(db).session() as s:
            repo.set_annotator_active(s, name, False)
    except repo.FeedbackError as e:
        _fail(str(e))
    typer.echo(f"{name} deactivated (a running server notices within 5 s)")


@annotators_app.command("list")
def annotators_list(db: str = DB_OPT) -> None:
    """List annotators and their judgement counts.  Example: rlhfkit annotators list --db feedback.db"""
    from rlhfkit.feedback import repo

    with _open(db).read() as s:
        for a in repo.annotator_summaries(s):
            typer.echo(f"{a['name']}\t{'active' if a['active'] else 'inactive'}\t{a['judgements']} judgements\t{a['role']}")


def serve(
    db: str = DB_OPT,
    host: str = typer.Option("127.0.0.1", help="interface to listen on"),
    port: int = typer.Option(8000, help="TCP port"),
    ranker: Optional[str] = typer.Option(None, help="score PROJECT's items by disagreement first (child process)"),
    project: Optional[str] = typer.Option(None, "--project", "-p", help="project for --ranker"),
    sqlite_sync: str = typer.Option(
        "full", help="SQLite only. full: every acknowledged judgement is fsynced and survives a power cut; "
        "normal: WAL without an fsync per commit, survives a killed server but a power cut may lose the "
        "last moments; faster"),
    workers: int = typer.Option(1, min=1, max=64, help="server processes; more than 1 needs PostgreSQL (SQLite "
                                "has one writer, and the processes would queue on its lock)"),
) -> None:
    """Start the annotation server.  Example: rlhfkit serve --db feedback.db --host 127.0.0.1 --port 8000"""
    import uvicorn

    from rlhfkit.feedback import repo
    from rlhfkit.feedback.app import SERVE_DB_ENV, create_app

    if ranker:
        if not project:
            _fail("--ranker needs --project")
        # The ranker may import torch; it runs in a child so the server process never does.
        cmd = [sys.executable, "-m", "rlhfkit.cli", "feedback", "rank", "--db", db, "-p", project, "--ranker", ranker]
        if subprocess.run(cmd).returncode != 0:
            _fail("ranking failed; see above")
    if sqlite_sync.lower() not in ("full", "normal"):
        _fail(f"--sqlite-sync must be full or normal, not {sqlite_sync!r}")
    database = _open(db, sqlite_sync.upper())
    if workers > 1 and database.is_sqlite:
        _fail(f"--workers {workers} needs a PostgreSQL --db: SQLite has a single writer, and several server "
              "processes would wait on its file lock instead of the in-process queue")
    with database.session() as s:
        token = repo.ensure_admin_token(s)
    base = f"http://{host}:{port}"
    if token:
        typer.echo(f"admin login (shown once; `rlhfkit feedback admin-token` makes a new one): {base}/login?token={token}")
    typer.echo(f"serving {database.url} on {base}  (API docs: {base}/docs)")
    if workers > 1:  # each worker process opens its own connection pool through app_from_env
        database.close()
        os.environ[SERVE_DB_ENV] = database.url
        uvicorn.run("rlhfkit.feedback.app:app_from_env", factory=True, workers=workers, host=host, port=port,
                    log_level="warning")
    else:
        uvicorn.run(create_app(database), host=host, port=port, log_level="warning")
