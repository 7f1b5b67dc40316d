"""Importing existing judgements and items with empty responses (issue 14): nothing is dropped
silently; judgements keep annotator and source and count in statistics and exports."""

import json

from typer.testing import CliRunner

from rlhfkit.cli import app
from rlhfkit.feedback import repo
from rlhfkit.feedback.db import Database
from rlhfkit.feedback.export import export_items
from rlhfkit.schema import Annotation, PairwiseJudgement, RankingJudgement
from tests.feedback.conftest import make_items

runner = CliRunner()


def _labelled(n=2):
    items = make_items(n)
    for it in items:
        it.annotations = [
            Annotation(id=f"{it.id}-x", judgement=RankingJudgement(tiers=[[2], [0], [1]]), annotator_id="xena",
                       source="human", time_spent_s=12.5, critique="  clear  "),
            Annotation(id=f"{it.id}-j", judgement=RankingJudgement(tiers=[[2], [0, 1]]), annotator_id="gpt-judge",
                       source="model_judge"),
        ]
    return items


def _write(path, items):
    path.write_text("".join(it.model_dump_json() + "\n" for it in items))
    return path


def test_cli_import_keeps_existing_judgements(tmp_path):
    db = str(tmp_path / "f.db")
    f = _write(tmp_path / "labelled.jsonl", _labelled(2))
    r = runner.invoke(app, ["feedback", "import", str(f), "-p", "proj", "--db", db])
    assert r.exit_code == 0, r.output
    assert "added 2 items" in r.output and "4 existing judgements imported" in r.output
    r = runner.invoke(app, ["feedback", "stats", "-p", "proj", "--db", db])
    stats = json.loads(r.output)
    assert stats["progress"]["judgements"] == 4
    database = Database(db)
    with database.read() as s:
        items = export_items(s, repo.project_by_name(s, "proj"))
    anns = {(a.annotator_id, a.source, a.time_spent_s, a.critique) for it in items for a in it.annotations}
    assert anns == {("xena", "human", 12.5, "clear"), ("gpt-judge", "model_judge", None, None)}
    assert [a.judgement.tiers for a in items[0].annotations] == [[[2], [0], [1]], [[2], [0, 1]]]
    with database.read() as s:  # imported annotators exist but cannot log in until given a link
        assert {a["name"]: a["active"] for a in repo.annotator_summaries(s)} == {"xena": False, "gpt-judge": False}
    out = tmp_path / "pairs.jsonl"
    runner.invoke(app, ["feedback", "export", "-p", "proj", "-f", "trl-pairs", "-o", str(out), "--db", db])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 2 * (3 + 2)  # xena's full ranking: 3 pairs; the judge's tie: 2
    assert {r["annotator"] for r in rows} == {"xena", "gpt-judge"}


def test_imported_items_are_not_served_beyond_their_overlap(tmp_path, env):
    pid = env.project(overlap=2)
    with env.db.session() as s:
        repo.import_items(s, repo.get_project(s, pid), [(it, f"t:{n}") for n, it in enumerate(_labelled(1))])
    assert env.next("alice", pid)["done"] is True  # two imported judgements already fill overlap 2


def test_import_refuses_judgements_it_cannot_keep(env):
    pid = env.project(mode="pairwise")
    item = make_items(1)[0]
    item.annotations = [Annotation(judgement=PairwiseJudgement(a=0, b=1, choice="a"))]  # no annotator
    r = env.client.post(f"/api/admin/projects/{pid}/items", json={"items": [item.model_dump(mode="json")]},
                        headers=env.hdr("admin"))
    assert r.status_code == 422 and "must name its annotator" in r.json()["detail"]
    item.annotations = [Annotation(judgement=RankingJudgement(tiers=[[0], [1], [2]]), annotator_id="x")]
    r = env.client.post(f"/api/admin/projects/{pid}/items", json={"items": [item.model_dump(mode="json")]},
                        headers=env.hdr("admin"))
    assert r.status_code == 422 and "collects pairwise judgements" in r.json()["detail"]
    item.annotations = [Annotation(judgement=PairwiseJudgement(a=2, b=1, choice="b"), annotator_id="x")]
    r = env.client.post(f"/api/admin/projects/{pid}/items", json={"items": [item.model_dump(mode="json")]},
                        headers=env.hdr("admin"))
    assert r.status_code == 200 and r.json()["annotations"] == 1, r.text
    stats = env.client.get(f"/api/admin/projects/{pid}/stats", headers=env.hdr("admin")).json()
    assert stats["progress"]["judgements"] == 1


def _with_empty(tmp_path):
    items = [it.model_dump(mode="json") for it in make_items(3)]
    items[1]["responses"][2]["text"] = ""
    f = tmp_path / "items.jsonl"
    f.write_text("".join(json.dumps(it) + "\n" for it in items))
    return f, items


def test_cli_import_flags_empty_responses(tmp_path):
    db = str(tmp_path / "f.db")
    f, _ = _with_empty(tmp_path)
    r = runner.invoke(app, ["feedback", "import", str(f), "-p", "proj", "--db", db])
    assert r.exit_code == 0, r.output
    assert "added 3 items" in r.output and "1 with an empty response flagged" in r.output
    from tests.feedback.conftest import Env

    env = Env(Database(db))
    env.add_annotator("alice")
    shown = []
    for n in range(3):
        a = env.next("alice", 1)["assignment"]
        shown.append([(x["text"], x["empty"]) for x in a["responses"] if x["index"] == 2][0])
        env.client.post(f"/api/assignments/{a['assignment_id']}/judgement",
                        json={"id": f"j{n}", "judgement": {"kind": "ranking", "tiers": [[0], [1], [2]]}},
                        headers=env.hdr("alice"))
    assert ("", True) in shown and sum(e for _, e in shown) == 1
    with env.db.read() as s:
        items = export_items(s, repo.project_by_name(s, "proj"))
    flagged = [it for it in items if it.metadata.get("empty_responses")]
    assert len(flagged) == 1 and flagged[0].metadata["empty_responses"] == [2] and flagged[0].responses[2].text == ""


def test_cli_import_can_skip_empty_responses_and_report_the_lines(tmp_path):
    db = str(tmp_path / "f.db")
    f, _ = _with_empty(tmp_path)
    r = runner.invoke(app, ["feedback", "import", str(f), "-p", "proj", "--db", db, "--empty-responses", "skip"])
    assert r.exit_code == 0, r.output
    assert "items.jsonl, line 2" in r.output and "added 2 items" in r.output and "1 skipped" in r.output


def test_api_import_with_empty_responses(env):
    pid = env.project()
    items = [it.model_dump(mode="json") for it in make_items(3)]
    items[0]["responses"][1]["text"] = "   "
    url = f"/api/admin/projects/{pid}/items"
    r = env.client.post(url, json={"items": items, "empty_responses": "skip"}, headers=env.hdr("admin"))
    assert r.status_code == 200, r.text
    assert r.json()["added"] == 2 and r.json()["skipped_empty"][0].startswith("items[0].responses.1.text")
    r = env.client.post(url, json={"items": items}, headers=env.hdr("admin"))  # default: flag
    assert r.json()["added"] == 1 and r.json()["flagged_empty"] == 1


def test_pair_formats_with_an_empty_answer_are_flagged(tmp_path):
    from rlhfkit.feedback.items_io import read_items_file

    f = tmp_path / "pairs.jsonl"
    f.write_text(json.dumps({"prompt": "q", "chosen": "yes", "rejected": ""}) + "\n"
                 + json.dumps({"prompt": "q2", "chosen": "a", "rejected": "b"}) + "\n")
    read = read_items_file(f)
    assert [it.responses[1].text for it, _ in read.items] == ["", "b"]
    assert read.items[0][0].metadata["empty_responses"] == [1]
    hh = tmp_path / "hh.jsonl"
    hh.write_text(json.dumps({"chosen": "\n\nHuman: hi\n\nAssistant: hello", "rejected": "\n\nHuman: hi\n\nAssistant:"}) + "\n")
    [(item, src)] = read_items_file(hh).items
    assert item.responses[1].text == "" and item.metadata["empty_responses"] == [1] and src == "hh.jsonl:1"
