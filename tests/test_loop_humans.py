"""`rlhfkit loop` with `feedback: humans`, end to end on the tiny model: the test plays the people.

It reads the login links from the command's output as a person would copy them, opens them (the
cookie the link sets is the session) and then calls the JSON API the annotation page calls:
GET /api/projects/P/next, POST /api/assignments/A/judgement. The loop must then train on exactly
those rankings, with those names; a run killed with SIGKILL part-way through the round keeps the
labels already made and asks only for the rest; a timeout is one clear line and loses nothing.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from rlhfkit.cli import app
from rlhfkit.data import read_items
from rlhfkit.progress import console

PROMPTS = ["Tell me about cats.", "Why does it rain?", "Describe green tea."]
LINK = re.compile(r"login link for (\S+): (http://\S+/login\?token=\S+)")


def write_recipe(tmp_path: Path, model_dir: Path, name: str, port: int = 0, timeout_s: float = 600,
                 labels_per_item: int = 1, **humans) -> Path:
    train, evals = tmp_path / "train.jsonl", tmp_path / "eval.jsonl"
    train.write_text("".join(json.dumps({"id": f"p{i}", "prompt": p}) + "\n" for i, p in enumerate(PROMPTS)))
    evals.write_text("".join(json.dumps({"id": f"e{i}", "prompt": f"Say something about {w}."}) + "\n"
                             for i, w in enumerate(["maps", "tea"])))
    settings = {"port": port, "annotators": ["alice", "bob"], "labels_per_item": labels_per_item,
                "timeout_s": timeout_s, "poll_s": 0.05, **humans}
    recipe = tmp_path / f"{name}.yaml"
    recipe.write_text(f"""trainer: loop
name: {name}
out: {tmp_path / 'runs'}
model: {model_dir}
rounds: 1
prompts: {train}
responses_per_prompt: 3
max_new_tokens: 6
eval_prompts: {evals}
gold: tests.toy_data:lowercase_share
feedback: humans
humans: {json.dumps(settings)}
reward: {{max_length: 48, batch_size: 4, lr: 0.001}}
policy: {{algo: dpo, lr: 0.001, batch_size: 2}}
""")
    return recipe


class Person:
    """An annotator with a login link, doing over HTTP what the annotation page does."""

    def __init__(self, name: str, link: str):
        self.name = name
        self.http = httpx.Client(follow_redirects=True, timeout=30)
        page = self.http.get(link)
        # one project: the link lands on its annotation page
        assert page.status_code == 200 and re.fullmatch(r"/annotate/\d+", page.url.path), (page.status_code, page.url)
        self.base = f"{page.url.scheme}://{page.url.host}:{page.url.port}"
        self.project = int(page.url.path.rsplit("/", 1)[1])

    def next(self) -> dict | None:
        r = self.http.get(f"{self.base}/api/projects/{self.project}/next")
        assert r.status_code == 200, r.text
        return None if r.json()["done"] else r.json()["assignment"]

    def rank(self, assignment: dict) -> tuple[str, list[list[int]]]:
        """Best first by response text (ties by index), in original indices as the page sends them."""
        shown = assignment["responses"]
        tiers = [[r["index"]] for r in sorted(shown, key=lambda r: (r["text"], r["index"]))]
        body = {"id": f"{self.name}-{assignment['assignment_id']}", "judgement": {"kind": "ranking", "tiers": tiers}}
        r = self.http.post(f"{self.base}/api/assignments/{assignment['assignment_id']}/judgement", json=body)
        assert r.status_code == 201, r.text
        return assignment["prompt"], tiers

    def skip(self, assignment: dict) -> None:
        r = self.http.post(f"{self.base}/api/assignments/{assignment['assignment_id']}/skip",
                           json={"reason": "cannot judge this one"})
        assert r.status_code == 200, r.text


def label_all(people: list[Person], made: dict) -> None:
    """Take turns until nobody is offered anything more; record (prompt, name) -> tiers."""
    active = list(people)
    while active:
        for p in list(active):
            a = p.next()
            if a is None:
                active.remove(p)
                continue
            prompt, tiers = p.rank(a)
            assert (prompt, p.name) not in made  # nobody is asked the same item twice
            made[prompt, p.name] = tiers


class InProcess:
    """`rlhfkit loop ...` in a thread of this process, its console captured as it prints."""

    def __init__(self, monkeypatch, args: list[str]):
        self.out = io.StringIO()
        monkeypatch.setattr(console, "_file", self.out)
        self.result: dict = {}
        self.thread = threading.Thread(target=self._run, args=(args,), daemon=True)
        self.thread.start()

    def _run(self, args):
        try:
            self.result["code"] = app(args, standalone_mode=False) or 0
        except BaseException as e:  # noqa: BLE001  (reported by the test)
            self.result["error"] = e

    def text(self) -> str:
        return self.out.getvalue()

    def finish(self, timeout: float = 600) -> int:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), self.text()
        assert "error" not in self.result, (self.result.get("error"), self.text())
        return self.result["code"]


def wait_for_links(read, timeout: float = 300, alive=lambda: True) -> dict[str, str]:
    """The login links, copied from the output once the command says it is waiting."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "waiting for" in read():
            return dict(LINK.findall(read()))
        assert alive(), read()
        time.sleep(0.05)
    raise AssertionError(f"not waiting for judgements after {timeout} s:\n{read()}")


def judgements_of(run: Path) -> dict:
    items = [json.loads(x) for x in (run / "round-1" / "judgements.jsonl").read_text().splitlines()]
    return {(it["prompt"], a["annotator_id"]): a for it in items for a in it["annotations"]}, items


def check_trained_on(run: Path, made: dict) -> None:
    """judgements.jsonl holds exactly the rankings made, by name; the reward model's and the
    policy's lineage hash exactly those judgements."""
    got, items = judgements_of(run)
    assert {k: a["judgement"]["tiers"] for k, a in got.items()} == made
    assert all(a["source"] == "human" for a in got.values())
    samples = [json.loads(x) for x in (run / "round-1" / "samples.jsonl").read_text().splitlines()]
    assert [it["id"] for it in items] == [it["id"] for it in samples]  # the round's items, unchanged
    assert [it["responses"] for it in items] == [it["responses"] for it in samples]
    assert json.loads((run / "round-1" / "phases.json").read_text())["done"] == [
        "generate", "feedback", "reward", "policy", "eval"]
    rm = json.loads((run / "round-1" / "reward" / "lineage.json").read_text())
    # the loop's content hash, recomputed here: sha256 of the canonical JSON of (item id, the
    # annotation as the schema reads it from judgements.jsonl)
    def canon(obj) -> str:
        return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()

    hashes = [canon({"item": it.id, "annotation": a.model_dump(mode="json")})
              for it in read_items(run / "round-1" / "judgements.jsonl") for a in it.annotations]
    assert rm["judgement_hashes"] == hashes and len(hashes) == len(made)
    assert rm["judgements_sha256"] == canon(hashes)
    policy = json.loads((run / "round-1" / "policy" / "lineage.json").read_text())
    assert policy["reward_model_judgements_sha256"] == rm["judgements_sha256"]
    assert (run / "round-1" / "policy" / "model.safetensors").exists()


def test_people_label_the_round_over_http_and_the_loop_trains_on_exactly_that(tmp_path, tiny_model_dir, monkeypatch):
    recipe = write_recipe(tmp_path, tiny_model_dir, "h")
    run = InProcess(monkeypatch, ["loop", str(recipe), "--no-progress"])
    links = wait_for_links(run.text, alive=run.thread.is_alive)
    assert set(links) == {"alice", "bob"} and links["alice"] != links["bob"]
    assert "waiting for 3 judgements (0 already in)" in run.text()
    made: dict = {}
    label_all([Person(name, link) for name, link in links.items()], made)
    assert run.finish() == 0
    out = run.text()
    assert len(made) == 3 and {who for _, who in made} == {"alice", "bob"}  # one label per item, shared out
    assert re.search(r"judgements: 3/3 \(alice \d, bob \d\)", out), out  # the progress lines while waiting
    assert "report:" in out and "gold win rate" in out
    check_trained_on(tmp_path / "runs" / "h", made)
    tokens = tmp_path / "runs" / "h" / "round-1" / "login_tokens.json"
    assert tokens.stat().st_mode & 0o077 == 0  # the links are secrets: owner only
    with pytest.raises(httpx.ConnectError):  # the server is gone once the round is labelled
        httpx.get(links["alice"])

    res = CliRunner().invoke(app, ["lineage", str(tmp_path / "runs" / "h" / "round-1" / "policy")])
    assert res.exit_code == 0, res.output
    assert "3 judgements" in res.output and "reward model" in res.output and str(tiny_model_dir) in res.output


def test_a_run_killed_mid_round_keeps_the_labels_made_and_asks_only_for_the_rest(tmp_path, tiny_model_dir, monkeypatch):
    with socket.socket() as s:  # a fixed port, so the links can survive the restart unchanged
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    recipe = write_recipe(tmp_path, tiny_model_dir, "k", port=port, labels_per_item=2)
    log = tmp_path / "first.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(log, "w") as fh:  # progress left on: without a terminal it prints a line per change
        proc = subprocess.Popen([sys.executable, "-m", "rlhfkit.cli", "loop", str(recipe)], env=env,
                                stdout=fh, stderr=subprocess.STDOUT)
    try:
        links = wait_for_links(log.read_text, alive=lambda: proc.poll() is None)
        alice, bob = Person("alice", links["alice"]), Person("bob", links["bob"])
        made: dict = {}
        for p in (alice, alice, bob):
            prompt, tiers = p.rank(p.next())
            made[prompt, p.name] = tiers
        open_before = alice.next()  # alice is looking at a third item when the loop dies
        deadline = time.monotonic() + 120
        while "judgements: 3/6" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    first = log.read_text()
    assert "waiting for 6 judgements (0 already in)" in first and "judgements: 3/6 (alice 2, bob 1)" in first, first
    assert not (tmp_path / "runs" / "k" / "round-1" / "judgements.jsonl").exists()  # killed inside the wait

    run = InProcess(monkeypatch, ["loop", str(recipe), "--no-progress"])  # the same command again
    assert wait_for_links(run.text, alive=run.thread.is_alive) == links  # the same links still work
    assert "waiting for 6 judgements (3 already in)" in run.text()
    again = alice.next()  # alice's open page (her cookie) still works: the same item, not a new one
    assert again["assignment_id"] == open_before["assignment_id"]
    prompt, tiers = alice.rank(again)
    made[prompt, "alice"] = tiers
    label_all([alice, bob], made)  # asserts nobody is asked an item they already judged
    assert run.finish() == 0
    assert len(made) == 6  # 3 before the kill + 3 after: every item by both
    check_trained_on(tmp_path / "runs" / "k", made)


def test_a_timeout_is_one_clear_line_and_keeps_what_was_saved(tmp_path, tiny_model_dir, monkeypatch):
    from rlhfkit.feedback import repo
    from rlhfkit.feedback.db import open_database
    from rlhfkit.feedback.export import export_items

    recipe = write_recipe(tmp_path, tiny_model_dir, "t", timeout_s=4)
    run = InProcess(monkeypatch, ["loop", str(recipe), "--no-progress"])
    links = wait_for_links(run.text, alive=run.thread.is_alive)
    alice = Person("alice", links["alice"])
    prompt, tiers = alice.rank(alice.next())
    assert run.finish() == 1
    out = run.text()
    db_path = tmp_path / "runs" / "t" / "round-1" / "feedback.db"
    assert (f"error: only 1 of 3 judgements after 4 s (humans.timeout_s); the judgements made so far are kept "
            f"in {db_path}: run the same command again to wait for the rest") in out, out
    assert "Traceback" not in out
    round_dir = tmp_path / "runs" / "t" / "round-1"
    assert json.loads((round_dir / "phases.json").read_text())["done"] == ["generate"]
    assert not (round_dir / "judgements.jsonl").exists()
    database = open_database(str(db_path))
    with database.read() as s:
        kept = export_items(s, repo.project_by_name(s, "round-1"))
    database.close()
    assert [(it.prompt, [(a.annotator_id, a.judgement.tiers) for a in it.annotations]) for it in kept] == [
        (prompt, [("alice", tiers)])]
    with pytest.raises(httpx.ConnectError):  # and the server was stopped
        httpx.get(links["alice"])


@pytest.mark.parametrize("humans, field, message", [
    ({"timeout": 5}, "humans.timeout", "unknown key"),
    ({"annotators": ["alice"], "labels_per_item": 2}, "humans.labels_per_item", "expected 1 to 1"),
    ({"annotators": ["alice", "alice"]}, "humans.annotators", "distinct names"),
    ({"port": 70000}, "humans.port", "0-65535"),
    ({"poll_s": 0}, "humans.poll_s", "positive number"),
])
def test_humans_settings_that_could_never_finish_are_refused_before_anything_runs(tmp_path, humans, field, message):
    recipe = write_recipe(tmp_path, tmp_path / "no-model", "bad", **humans)
    res = CliRunner().invoke(app, ["loop", str(recipe), "--no-progress"])
    assert res.exit_code == 2, res.output
    assert f"field '{field}'" in res.output and message in res.output and str(recipe) in res.output


def test_a_busy_port_is_a_clear_error_not_an_endless_wait(tmp_path):
    from rlhfkit.commands.human_feedback import DEFAULTS, HumanFeedbackError, human_feedback
    from tests.feedback.conftest import make_items

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        collect = human_feedback({**DEFAULTS, "port": port, "timeout_s": 60}, show_progress=False)
        start = time.monotonic()
        with pytest.raises(HumanFeedbackError, match=f"cannot serve the annotation app on 127.0.0.1:{port}: "
                                                     r".*set humans.port in the recipe \(0 picks a free port\)"):
            (tmp_path / "round-1").mkdir()
            collect(make_items(2), tmp_path / "round-1")
        assert time.monotonic() - start < 5


class Collecting:
    """The human phase alone, without a model: ``collect(items, round_dir)`` in a thread."""

    def __init__(self, monkeypatch, tmp_path: Path, items, terminal: bool = False, **settings):
        from rlhfkit.commands.human_feedback import DEFAULTS, human_feedback

        self.out = io.StringIO()
        monkeypatch.setattr(console, "_file", self.out)
        if terminal:
            monkeypatch.setattr(console, "_force_terminal", True)
        collect = human_feedback({**DEFAULTS, "port": 0, "poll_s": 0.05, **settings}, show_progress=terminal)
        (tmp_path / "round-1").mkdir()
        self.result: dict = {}
        self.thread = threading.Thread(target=self._run, args=(collect, items, tmp_path / "round-1"), daemon=True)
        self.thread.start()

    def _run(self, collect, items, round_dir):
        try:
            self.result["items"] = collect(items, round_dir)
        except BaseException as e:  # noqa: BLE001  (reported by labelled())
            self.result["error"] = e

    def links(self) -> dict[str, str]:
        return wait_for_links(self.out.getvalue, alive=self.thread.is_alive)

    def labelled(self, timeout: float = 60) -> list:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), self.out.getvalue()
        assert "error" not in self.result, (self.result.get("error"), self.out.getvalue())
        return self.result["items"]


def test_an_item_everyone_skipped_is_left_out_instead_of_waiting_forever(tmp_path, monkeypatch):
    """Two annotators, one label per item: both skip the same item, so nobody can label it any
    more. The round goes on without it (and says so) rather than wait for what cannot come
    (before the fix: a HumanFeedbackError once the 20 s timeout ran out)."""
    from tests.feedback.conftest import make_items

    items = make_items(3)
    phase = Collecting(monkeypatch, tmp_path, items, annotators=["alice", "bob"], timeout_s=20)
    people = [Person(name, link) for name, link in phase.links().items()]
    skipped = people[0].next()
    people[0].skip(skipped)
    made: dict = {}
    for p in people:
        while (a := p.next()) is not None:
            if a["prompt"] == skipped["prompt"]:
                p.skip(a)
            else:
                made[a["prompt"], p.name] = p.rank(a)[1]
    labelled = phase.labelled()
    assert {(it.prompt, a.annotator_id): a.judgement.tiers for it in labelled for a in it.annotations} == made
    assert len(made) == 2 and skipped["prompt"] not in {prompt for prompt, _ in made}
    left_out = next(it.id for it in items if it.prompt == skipped["prompt"])
    text = phase.out.getvalue()
    assert f"left out (skipped by every annotator who could label it): {left_out}" in text, text


def test_in_a_terminal_the_wait_is_a_progress_bar(tmp_path, monkeypatch):
    from tests.feedback.conftest import make_items

    phase = Collecting(monkeypatch, tmp_path, make_items(2), terminal=True, annotators=["alice"])
    label_all([Person("alice", phase.links()["alice"])], {})
    assert len(phase.labelled()) == 2
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", phase.out.getvalue())  # without the terminal's control codes
    assert "login link for alice: http://127.0.0.1:" in text
    assert re.search(r"waiting for judgements .*━.* 2/2", text), text  # the bar, drawn to the end
    assert "judgements: 1/2" not in text  # no line per change under a live bar


@pytest.mark.skipif(not os.path.exists("/usr/bin/chromium"), reason="needs Debian's chromium (make system-deps)")
def test_a_printed_link_opens_the_annotation_page_in_a_real_browser(tmp_path, monkeypatch):
    """Copy the printed link into Chromium, rank the item by keyboard: the round's label is
    exactly what the page posted, under the annotator's name."""
    sync_api = pytest.importorskip("playwright.sync_api")
    from tests.feedback.conftest import make_items
    from tests.feedback.test_browser import ARGS, CHROMIUM

    phase = Collecting(monkeypatch, tmp_path, make_items(1), annotators=["alice"])
    link = phase.links()["alice"]
    posted = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        page.on("request", lambda r: r.method == "POST" and posted.append(r.post_data_json["judgement"]))
        page.goto(link)
        assert re.search(r"/annotate/\d+$", page.url)
        sync_api.expect(page.locator(".response")).to_have_count(3)
        page.keyboard.press("2")
        page.keyboard.press("1")  # the last one is placed for you
        # the ranking must be complete on the page before Enter submits it (pressing on too soon
        # failed once in CI: Enter arrived before the tiers were built, and nothing was posted)
        sync_api.expect(page.locator(".tier")).to_have_count(3)
        page.keyboard.press("Enter")
        sync_api.expect(page.locator(".done")).to_have_count(1, timeout=15_000)  # a busy CI machine
        browser.close()
    [item] = phase.labelled()
    assert [(a.annotator_id, a.judgement.model_dump()) for a in item.annotations] == [("alice", posted[0])]
    assert len(posted) == 1 and len(posted[0]["tiers"]) == 3
