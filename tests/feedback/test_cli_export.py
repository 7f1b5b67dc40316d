"""CLI: import (with file:line errors), annotators add (a working login link), export formats, rank."""

import json
import subprocess
import sys

from typer.testing import CliRunner

from rlhfkit.cli import app
from rlhfkit.feedback import repo
from rlhfkit.feedback.db import Database
from rlhfkit.schema import PreferenceItem, judgement_to_pairs
from tests.feedback.conftest import Env, make_items

runner = CliRunner()


def _write(path, items):
    path.write_text("".join(it.model_dump_json() + "\n" for it in items))
    return path


def test_import_reports_file_and_line(tmp_path):
    f = tmp_path / "items.jsonl"
    good = make_items(1)[0].model_dump_json()
    f.write_text(good + "\n" + json.dumps({"id": "x", "prompt": "p", "responses": [{"text": "only one"}]}) + "\n")
    r = runner.invoke(app, ["feedback", "import", str(f), "-p", "proj", "--db", str(tmp_path / "f.db")])
    assert r.exit_code == 2
    assert "items.jsonl, line 2" in r.output and "at least 2 responses" in r.output
    f.write_text(good + "\n{not json\n")
    r = runner.invoke(app, ["feedback", "import", str(f), "-p", "proj", "--db", str(tmp_path / "f.db")])
    assert r.exit_code == 2 and "items.jsonl, line 2" in r.output


def test_import_add_annotator_login_and_export_all_formats(tmp_path):
    db = str(tmp_path / "f.db")
    items = _write(tmp_path / "items.jsonl", make_items(4))
    r = runner.invoke(app, ["feedback", "import", str(items), "-p", "proj", "--db", db, "--overlap", "2"])
    assert r.exit_code == 0 and "added 4 items" in r.output
    r = runner.invoke(app, ["feedback", "import", str(items), "-p", "proj", "--db", db])
    assert "added 0 items, 4 already present" in r.output
    r = runner.invoke(app, ["annotators", "add", "alice", "--db", db, "--base-url", "http://testserver"])
    assert r.exit_code == 0
    link = r.output.strip()
    assert link.startswith("http://testserver/login?token=ann_")
    assert runner.invoke(app, ["annotators", "add", "alice", "--db", db]).exit_code == 2  # duplicate name

    env = Env(Database(db))
    login = env.client.get(link.replace("http://testserver", ""), follow_redirects=False)
    assert login.status_code == 303  # the printed link logs alice in
    env.tokens["alice"] = link.split("token=")[1]
    env.add_annotator("bob")
    for who in ("alice", "bob"):
        for n in range(2):
            env.rank_submit(who, 1, f"{who}{n}", [2, 0, 1])

    out = tmp_path / "out.jsonl"
    r = runner.invoke(app, ["feedback", "export", "-p", "proj", "-f", "rlhfkit", "-o", str(out), "--db", db])
    assert r.exit_code == 0, r.output
    exported = [PreferenceItem.model_validate_json(line) for line in out.read_text().splitlines()]
    anns = [a for it in exported for a in it.annotations]
    assert len(anns) == 4 and {a.annotator_id for a in anns} == {"alice", "bob"}
    assert all(a.shown_order is not None and a.created_at is not None and a.time_spent_s is not None for a in anns)
    assert all(it.metadata["feedback"]["source"].startswith("items.jsonl:") for it in exported)
    n_pairs = sum(len(judgement_to_pairs(a.judgement)) for a in anns)

    r = runner.invoke(app, ["feedback", "export", "-p", "proj", "-f", "trl-pairs", "-o", str(out), "--db", db])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == n_pairs == 12
    for row in rows:  # [2, 0, 1]: response 2 beats 0 and 1, 0 beats 1
        assert (row["chosen_index"], row["rejected_index"]) in {(2, 0), (2, 1), (0, 1)}
        assert row["chosen"].startswith(f"answer {row['chosen_index']} ") and row["annotator"] in {"alice", "bob"}

    r = runner.invoke(app, ["feedback", "export", "-p", "proj", "-f", "hh", "-o", str(out), "--db", db])
    hh = [json.loads(line) for line in out.read_text().splitlines()]
    side = [json.loads(line) for line in (tmp_path / "out.jsonl.provenance.jsonl").read_text().splitlines()]
    assert len(hh) == len(side) == 12 and all(set(h) == {"chosen", "rejected"} for h in hh)
    assert hh[0]["chosen"].startswith("\n\nHuman: question") and "\n\nAssistant: answer 2" in hh[0]["chosen"]

    r = runner.invoke(app, ["feedback", "export", "-p", "nope", "-f", "hh", "-o", str(out), "--db", db])
    assert r.exit_code == 2 and "no project named 'nope'" in r.output
    r = runner.invoke(app, ["feedback", "stats", "-p", "proj", "--db", db])
    assert json.loads(r.output)["progress"]["judgements"] == 4


def test_rank_command_with_fake_ranker(tmp_path):
    db = str(tmp_path / "f.db")
    items = _write(tmp_path / "items.jsonl", make_items(3))
    runner.invoke(app, ["feedback", "import", str(items), "-p", "proj", "--db", db])
    rdir = tmp_path / "rm"
    rdir.mkdir()
    (rdir / "ranker.py").write_text("def rank(items):\n    return [len(it.responses[0].text) + i for i, it in enumerate(items)]\n")
    r = runner.invoke(app, ["feedback", "rank", "-p", "proj", "--ranker", str(rdir), "--db", db])
    assert r.exit_code == 0 and "scored 3 items" in r.output
    bad = tmp_path / "bad.py"
    bad.write_text("def rank(items):\n    return [1.0]\n")
    r = runner.invoke(app, ["feedback", "rank", "-p", "proj", "--ranker", f"{bad}:rank", "--db", db])
    assert r.exit_code == 2 and "returned 1 scores for 3 items" in r.output


def test_admin_token_rotation(tmp_path):
    db = str(tmp_path / "f.db")
    r1 = runner.invoke(app, ["feedback", "admin-token", "--db", db])
    r2 = runner.invoke(app, ["feedback", "admin-token", "--db", db])
    t1, t2 = (r.output.strip().split("token=")[1] for r in (r1, r2))
    with Database(db).session() as s:
        assert not repo.is_admin_token(s, t1) and repo.is_admin_token(s, t2)


def test_server_modules_never_import_torch(tmp_path):
    code = (
        "import sys, rlhfkit.cli, rlhfkit.feedback.app as a, rlhfkit.feedback.ranker, rlhfkit.feedback.export\n"
        f"app = a.create_app({str(tmp_path / 'f.db')!r})\n"
        "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.') or m == 'transformers')\n"
        "assert not bad, bad\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_every_command_has_help_with_example():
    for args in (["feedback", "import"], ["feedback", "export"], ["feedback", "rank"], ["annotators", "add"], ["serve"]):
        r = runner.invoke(app, [*args, "--help"])
        assert r.exit_code == 0 and "Example" in r.output, args


def test_serve_with_a_failing_ranker_stops_before_serving(tmp_path):
    db = str(tmp_path / "f.db")
    items = _write(tmp_path / "items.jsonl", make_items(2))
    runner.invoke(app, ["feedback", "import", str(items), "-p", "proj", "--db", db])
    bad = tmp_path / "bad.py"
    bad.write_text("def rank(items):\n    return [float('nan')] * len(items)\n")
    r = subprocess.run([sys.executable, "-m", "rlhfkit.cli", "serve", "--db", db, "-p", "proj", "--ranker", f"{bad}:rank"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "non-finite" in r.stderr and "ranking failed" in r.stderr
    assert runner.invoke(app, ["serve", "--db", db, "--ranker", f"{bad}:rank"]).exit_code == 2  # needs --project


def test_new_link_and_deactivate(tmp_path):
    db = str(tmp_path / "f.db")
    old = runner.invoke(app, ["annotators", "add", "alice", "--db", db]).output.strip().split("token=")[1]
    new = runner.invoke(app, ["annotators", "new-link", "alice", "--db", db]).output.strip().split("token=")[1]
    env = Env(Database(db))
    env.app.state.token_cache.ttl_s = 0  # see changes at once
    assert env.client.get("/api/me", headers={"Authorization": f"Bearer {old}"}).status_code == 401
    assert env.client.get("/api/me", headers={"Authorization": f"Bearer {new}"}).status_code == 200
    assert runner.invoke(app, ["annotators", "deactivate", "alice", "--db", db]).exit_code == 0
    assert env.client.get("/api/me", headers={"Authorization": f"Bearer {new}"}).status_code == 401
    assert runner.invoke(app, ["annotators", "deactivate", "nobody", "--db", db]).exit_code == 2
    assert "alice\tinactive\t0 judgements" in runner.invoke(app, ["annotators", "list", "--db", db]).output
