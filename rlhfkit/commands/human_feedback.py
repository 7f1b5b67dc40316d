"""``feedback: humans`` in the loop: serve a round's items in the annotation app and wait for people.

The round's samples become a project (named after the round) in ``round-K/feedback.db``. Each
annotator the recipe names gets a login link, printed once the server answers, and the wait
ends when every item has ``labels_per_item`` judgements, or lacks only labels nobody can give
(the app offers an item to each annotator once, so an item every annotator skipped is left out,
and said so, instead of waited for). A progress bar shows how many are in; without a live
terminal (a log file, ``--no-progress``) one line per change does.

Nothing is lost when the loop stops part-way (Ctrl-C, ``kill -9``, the timeout): a judgement is
committed to the database when the annotator submits it, and a re-run imports the same items
(already there, so skipped), keeps their judgements and waits only for the missing ones. The
annotators' tokens are kept in ``round-K/login_tokens.json`` (readable by its owner only), so a
re-run prints the same links and a page left open keeps working.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Callable

from rlhfkit.data.errors import DataError
from rlhfkit.progress import console

DEFAULTS = {"host": "127.0.0.1", "port": 8000, "annotators": ["annotator-1"], "labels_per_item": 1,
            "timeout_s": 24 * 3600, "poll_s": 2.0}
TOKENS_FILE = "login_tokens.json"


class HumanFeedbackError(RuntimeError):
    """The human phase could not finish (no server, or the wait ran out); what was saved stays."""


def humans_settings(humans: dict, recipe: str) -> dict:
    """The recipe's ``humans:`` block over the defaults, checked: a typo or a setting that could
    never finish (more labels per item than annotators) is refused before anything runs."""
    if not isinstance(humans, dict):
        raise DataError(recipe, None, "humans", f"expected a mapping of settings, got {humans!r}")
    for key in humans:
        if key not in DEFAULTS:
            raise DataError(recipe, None, f"humans.{key}", f"unknown key; known keys: {', '.join(DEFAULTS)}")
    s = {**DEFAULTS, **humans}
    names = s["annotators"]
    if (not isinstance(names, list) or not names or len(set(names)) != len(names)
            or not all(isinstance(n, str) and n.strip() for n in names)):
        raise DataError(recipe, None, "humans.annotators", f"expected a list of distinct names, got {names!r}")
    n = s["labels_per_item"]
    if not isinstance(n, int) or not 1 <= n <= len(names):
        # an annotator judges an item at most once, so more labels than people never arrive
        raise DataError(recipe, None, "humans.labels_per_item",
                        f"expected 1 to {len(names)} (the number of annotators), got {n!r}")
    if not isinstance(s["port"], int) or not 0 <= s["port"] <= 65535:
        raise DataError(recipe, None, "humans.port", f"expected 0-65535 (0: any free port), got {s['port']!r}")
    for key in ("timeout_s", "poll_s"):
        if not isinstance(s[key], (int, float)) or s[key] <= 0:
            raise DataError(recipe, None, f"humans.{key}", f"expected a positive number of seconds, got {s[key]!r}")
    return s


def human_feedback(settings: dict, show_progress: bool) -> Callable:
    """``collect(items, round_dir) -> labelled items`` for ``Loop(human_feedback=...)``."""

    def collect(items, round_dir: Path):
        from rlhfkit.feedback.db import open_database

        database = open_database(str(round_dir / "feedback.db"))
        try:
            project_id, tokens = open_round_project(database, round_dir, items, settings)
            sock = _listen(settings["host"], settings["port"])
            base = f"http://{settings['host']}:{sock.getsockname()[1]}"
            server, thread = _serve(database, sock)
            try:
                for who, token in tokens.items():
                    console.print(f"login link for {who}: {base}/login?token={token}", highlight=False)
                return wait_for_labels(database, project_id, len(items) * settings["labels_per_item"], settings,
                                       show_progress, round_dir / "feedback.db")
            finally:
                server.should_exit = True
                thread.join(timeout=10)
        finally:
            database.close()

    return collect


def open_round_project(database, round_dir: Path, items, settings: dict) -> tuple[int, dict[str, str]]:
    """The round's project with its items (idempotent), and a login token per annotator."""
    from rlhfkit.feedback import repo

    with database.session() as s:
        project = repo.project_or_create(s, round_dir.name, mode="ranking", overlap=settings["labels_per_item"])
        project.overlap = settings["labels_per_item"]  # a re-run may ask for more (or fewer) labels
        repo.import_items(s, project, [(it, "loop") for it in items])
        tokens = _login_tokens(s, settings["annotators"], round_dir / TOKENS_FILE)
        return project.id, tokens


def _login_tokens(s, names: list[str], path: Path) -> dict[str, str]:
    """Keep each annotator's token from the last run when it still works; else make one."""
    import json

    from rlhfkit.data.atomic import atomic_write
    from rlhfkit.feedback import repo

    kept = json.loads(path.read_text()) if path.exists() else {}
    tokens = {}
    for who in names:
        known = repo.annotator_by_token(s, kept[who]) if who in kept else None
        if known is not None and known.name == who:
            tokens[who] = kept[who]
            continue
        try:
            tokens[who] = repo.new_annotator_token(s, who)
        except repo.NotFound:
            tokens[who] = repo.add_annotator(s, who)[1]
    # Written before the session commits the new hashes: after a crash between the two, the
    # next run finds a token that does not resolve and makes a new one. mkstemp: mode 0600.
    with atomic_write(path) as fh:
        fh.write(json.dumps({**kept, **tokens}, indent=2) + "\n")
    return tokens


def _listen(host: str, port: int) -> socket.socket:
    """Bind here, not in uvicorn: its bind failure exits the server thread quietly and the loop
    would wait for a server that never came; here it is a clear error (and port 0 works)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise HumanFeedbackError(f"cannot serve the annotation app on {host}:{port}: {e.strerror}; "
                                 "set humans.port in the recipe (0 picks a free port)") from None
    return sock


def _serve(database, sock: socket.socket):
    """Start uvicorn on ``sock`` in a thread and return once it answers."""
    import uvicorn

    from rlhfkit.feedback.app import create_app

    server = uvicorn.Server(uvicorn.Config(create_app(database), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:  # links are printed only once they work
        if not thread.is_alive():
            raise HumanFeedbackError("the annotation server stopped while starting (see the log above)")
        time.sleep(0.02)
    return server, thread


def _count(database, project_id: int, settings: dict):
    """(labelled items, judgements in, external ids of items that lack labels nobody can give)."""
    from rlhfkit.feedback import repo
    from rlhfkit.feedback.export import export_items

    per_item = settings["labels_per_item"]
    with database.read() as s:
        labelled = export_items(s, repo.get_project(s, project_id))
        lost = _unreachable(s, project_id, settings["annotators"], per_item)
    done = sum(min(len(it.annotations), per_item) for it in labelled)
    return labelled, done, lost


def _unreachable(s, project_id: int, names: list[str], per_item: int) -> dict[str, int]:
    """external item id -> labels it lacks that can never come: the app gives an item to each
    annotator at most once, so one that every remaining annotator skipped (or let its lease
    lapse on) stays short for good, and waiting for it would never end."""
    from collections import defaultdict

    from sqlalchemy import select

    from rlhfkit.feedback.models import Annotator, Assignment, Item

    people = set(s.scalars(select(Annotator.id).where(Annotator.name.in_(names), Annotator.active)))
    closed: dict[int, set[int]] = defaultdict(set)  # item -> annotators who cannot take it (again)
    judged: Counter = Counter()
    for item_id, who, status in s.execute(select(Assignment.item_id, Assignment.annotator_id, Assignment.status)
                                          .where(Assignment.project_id == project_id)):
        if status != "open":
            closed[item_id].add(who)
            judged[item_id] += status == "done"
    out = {}
    for item_id, external_id in s.execute(select(Item.id, Item.external_id).where(
            Item.project_id == project_id, Item.is_gold.is_(False))):
        missing = per_item - min(judged[item_id], per_item)
        can_still = len(people - closed[item_id])
        if missing > can_still:
            out[external_id] = missing - can_still
    return out


def wait_for_labels(database, project_id: int, need: int, settings: dict, show_progress: bool, where: Path):
    """Poll the database until ``need`` judgements are in, or every missing one is one nobody
    can give; return the labelled items."""
    from rlhfkit.progress import progress

    live = show_progress and console.is_terminal  # a bar that redraws; else a line per change
    deadline = time.monotonic() + settings["timeout_s"]
    labelled, done, lost = _count(database, project_id, settings)
    console.print(f"waiting for {need} judgements ({done} already in)", highlight=False)
    shown = (done, {})
    with progress(need, "waiting for judgements", enabled=live, start=done) as advance:
        while True:
            if (done, lost) != shown:
                advance(n=done - shown[0])
                if not live and done != shown[0]:
                    who = Counter(a.annotator_id for it in labelled for a in it.annotations)
                    console.print(f"judgements: {done}/{need} (" + ", ".join(f"{k} {v}" for k, v in sorted(who.items()))
                                  + ")", highlight=False)
                if lost != shown[1]:
                    console.print(f"{len(lost)} item(s) left out (skipped by every annotator who could label it): "
                                  + ", ".join(lost), highlight=False)
                shown = (done, lost)
            if done + sum(lost.values()) >= need:
                return [it for it in labelled if it.annotations]
            left = deadline - time.monotonic()
            if left <= 0:
                raise HumanFeedbackError(
                    f"only {done} of {need} judgements after {settings['timeout_s']:g} s (humans.timeout_s); "
                    f"the judgements made so far are kept in {where}: run the same command again to wait for the rest")
            time.sleep(min(settings["poll_s"], left))
            labelled, done, lost = _count(database, project_id, settings)
