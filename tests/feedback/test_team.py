"""Team features: membership, archive/delete, guidelines with worked examples, done/remaining."""

import json

from typer.testing import CliRunner

from rlhfkit.cli import app
from rlhfkit.feedback import repo
from rlhfkit.feedback.export import export_lines
from tests.feedback.conftest import make_items

EXAMPLE = {"prompt": "What is 2+2?", "responses": ["4", "5"], "answer": "1 > 2", "why": "2+2 is 4."}


def _visible(env, who):
    r = env.client.get("/api/me", headers=env.hdr(who))
    assert r.status_code == 200
    return [p["name"] for p in r.json()["projects"]]


def test_members_only_projects_are_invisible_to_others(env):
    open_pid = env.project("open", items=make_items(2))
    pid = env.project("secret", items=make_items(2))
    r = env.client.post(f"/api/admin/projects/{pid}/members", json={"add": ["alice"]}, headers=env.hdr("admin"))
    assert r.status_code == 200 and r.json() == {"members_only": True, "members": ["alice"]}
    assert _visible(env, "alice") == ["open", "secret"] and _visible(env, "bob") == ["open"]
    assert env.client.get(f"/api/projects/{pid}/next", headers=env.hdr("bob")).status_code == 404
    assert env.client.get(f"/api/projects/{pid}/guidelines", headers=env.hdr("bob")).status_code == 404
    assert env.client.get(f"/annotate/{pid}", headers=env.hdr("bob")).status_code == 404
    assert env.next("alice", pid)["done"] is False
    assert env.next("bob", open_pid)["done"] is False
    # removing the last member keeps the project closed (never opens it to everyone by accident)
    r = env.client.post(f"/api/admin/projects/{pid}/members", json={"remove": ["alice"]}, headers=env.hdr("admin"))
    assert r.json() == {"members_only": True, "members": []}
    assert _visible(env, "alice") == ["open"]
    # the admin can open it again
    r = env.client.patch(f"/api/admin/projects/{pid}", json={"members_only": False}, headers=env.hdr("admin"))
    assert r.status_code == 200 and _visible(env, "bob") == ["open", "secret"]


def test_membership_auth_paths(env):
    pid = env.project("p", items=make_items(1))
    url = f"/api/admin/projects/{pid}/members"
    assert env.client.post(url, json={"add": ["alice"]}).status_code == 401
    assert env.client.post(url, json={"add": ["alice"]}, headers=env.hdr("alice")).status_code == 403
    assert env.client.post("/api/admin/projects/999/members", json={"add": ["alice"]},
                           headers=env.hdr("admin")).status_code == 404
    r = env.client.post(url, json={"add": ["nobody"]}, headers=env.hdr("admin"))
    assert r.status_code == 404 and "nobody" in r.json()["detail"]
    assert env.client.get(url, headers=env.hdr("admin")).json() == {"members_only": False, "members": []}
    assert env.client.get(f"/api/projects/{pid}/progress").status_code == 401
    assert env.client.get(f"/api/projects/{pid}/progress", headers=env.hdr("admin")).status_code == 403


def test_archived_project_is_hidden_but_exports(env):
    pid = env.project("p", items=make_items(2), overlap=1)
    env.rank_submit("alice", pid, "j1")
    r = env.client.patch(f"/api/admin/projects/{pid}", json={"archived": True}, headers=env.hdr("admin"))
    assert r.status_code == 200 and r.json()["archived"] is True
    assert _visible(env, "alice") == []
    assert env.client.get(f"/api/projects/{pid}/next", headers=env.hdr("alice")).status_code == 404
    r = env.client.get(f"/api/admin/projects/{pid}/export", headers=env.hdr("admin"))
    assert r.status_code == 200 and len(r.text.splitlines()) == 1
    assert env.client.patch(f"/api/admin/projects/{pid}", json={"archived": True}).status_code == 401
    assert env.client.patch(f"/api/admin/projects/{pid}", json={"archived": True},
                            headers=env.hdr("bob")).status_code == 403
    assert env.client.patch("/api/admin/projects/77", json={"archived": True}, headers=env.hdr("admin")).status_code == 404
    assert env.client.patch(f"/api/admin/projects/{pid}", json={"archived": "yes"},
                            headers=env.hdr("admin")).status_code == 422


def test_delete_needs_the_name_and_removes_everything(env):
    keep = env.project("keep", items=make_items(1), overlap=1)
    pid = env.project("gone", items=make_items(2), overlap=1)
    env.rank_submit("alice", pid, "j1")
    env.rank_submit("alice", keep, "j2")
    assert env.client.delete(f"/api/admin/projects/{pid}").status_code == 401
    assert env.client.delete(f"/api/admin/projects/{pid}", headers=env.hdr("alice")).status_code == 403
    r = env.client.delete(f"/api/admin/projects/{pid}?confirm=wrong", headers=env.hdr("admin"))
    assert r.status_code == 409 and "confirm" in r.json()["detail"]
    r = env.client.delete(f"/api/admin/projects/{pid}?confirm=gone", headers=env.hdr("admin"))
    assert r.json() == {"deleted": "gone", "items": 2, "judgements": 1}
    assert env.client.delete(f"/api/admin/projects/{pid}?confirm=gone", headers=env.hdr("admin")).status_code == 404
    with env.db.read() as s:
        assert [p.name for p in repo.list_projects(s)] == ["keep"]
        assert len(export_lines(s, repo.get_project(s, keep), "rlhfkit")[0]) == 1


def test_guidelines_examples_and_progress(env):
    pid = env.project("p", items=make_items(3), overlap=2)
    r = env.client.patch(f"/api/admin/projects/{pid}", json={"instructions": "Prefer correct answers.",
                                                              "examples": [EXAMPLE]}, headers=env.hdr("admin"))
    assert r.status_code == 200 and r.json()["examples"] == [EXAMPLE]
    g = env.client.get(f"/api/projects/{pid}/guidelines", headers=env.hdr("alice")).json()
    assert g == {"instructions": "Prefer correct answers.", "examples": [EXAMPLE]}
    bad = env.client.patch(f"/api/admin/projects/{pid}", json={"examples": [{"prompt": "q", "responses": []}]},
                           headers=env.hdr("admin"))
    assert bad.status_code == 422 and "examples[0]" in bad.json()["detail"]
    prog = lambda who: env.client.get(f"/api/projects/{pid}/progress", headers=env.hdr(who)).json()  # noqa: E731
    assert (prog("alice")["done"], prog("alice")["remaining"]) == (0, 3)
    env.rank_submit("alice", pid, "a1")
    env.rank_submit("bob", pid, "b1")
    env.rank_submit("bob", pid, "b2")
    env.next("carol", pid)  # carol holds a lease on one item
    # alice: 2 items left unseen by her; carol's lease plus two judgements may fill one of them
    p = prog("alice")
    assert p["done"] == 1 and p["judged"] == 1
    with env.db.read() as s:
        from rlhfkit.feedback.projects import annotator_progress
        from rlhfkit.feedback.repo import annotator_by_name, get_project

        direct = annotator_progress(s, get_project(s, pid), annotator_by_name(s, "alice"))
    assert p["remaining"] == direct["remaining"]
    # brute force: items alice has not seen whose judgements + live leases are below the overlap
    with env.db.read() as s:
        from sqlalchemy import select

        from rlhfkit.feedback.models import Assignment, Item

        rows = s.execute(select(Assignment.item_id, Assignment.annotator_id, Assignment.status)).all()
        items = list(s.scalars(select(Item.id).where(Item.project_id == pid)))
    alice_id = 1
    left = sum(1 for i in items if not any(r[0] == i and r[1] == alice_id for r in rows)
               and sum(1 for r in rows if r[0] == i and r[2] in ("done", "open")) < 2)
    assert p["remaining"] == left


def test_cli_members_archive_delete_and_guidelines(tmp_path):
    runner = CliRunner()
    db = str(tmp_path / "f.db")
    items = tmp_path / "items.jsonl"
    items.write_text("".join(it.model_dump_json() + "\n" for it in make_items(2)))
    assert runner.invoke(app, ["feedback", "import", str(items), "-p", "proj", "--db", db]).exit_code == 0
    assert runner.invoke(app, ["annotators", "add", "alice", "--db", db]).exit_code == 0
    r = runner.invoke(app, ["annotators", "add", "rita", "--db", db, "--role", "reviewer"])
    assert r.exit_code == 0
    assert "rita\tactive\t0 judgements\treviewer" in runner.invoke(app, ["annotators", "list", "--db", db]).output
    r = runner.invoke(app, ["feedback", "members", "-p", "proj", "--add", "alice", "--db", db])
    assert r.exit_code == 0 and "members-only, members: alice" in r.output
    r = runner.invoke(app, ["feedback", "members", "-p", "proj", "--add", "zed", "--db", db])
    assert r.exit_code == 2 and "zed" in r.output
    ex = tmp_path / "ex.json"
    ex.write_text(json.dumps([EXAMPLE]))
    guide = tmp_path / "guide.md"
    guide.write_text("Be careful.")
    r = runner.invoke(app, ["feedback", "guidelines", "-p", "proj", "--text", str(guide), "--examples", str(ex),
                            "--db", db])
    assert r.exit_code == 0 and "1 worked examples" in r.output
    ex.write_text("[{")
    r = runner.invoke(app, ["feedback", "guidelines", "-p", "proj", "--examples", str(ex), "--db", db])
    assert r.exit_code == 2 and "line 1" in r.output
    assert runner.invoke(app, ["feedback", "archive", "-p", "proj", "--db", db]).exit_code == 0
    r = runner.invoke(app, ["feedback", "delete", "-p", "proj", "--db", db], input="n\n")
    assert r.exit_code != 0 and "2 items" in r.output and "Aborted" in r.output
    r = runner.invoke(app, ["feedback", "delete", "-p", "proj", "--db", db], input="y\n")
    assert r.exit_code == 0 and "deleted 'proj': 2 items" in r.output
    r = runner.invoke(app, ["feedback", "delete", "-p", "proj", "--db", db, "--yes"])
    assert r.exit_code == 2 and "no project" in r.output
