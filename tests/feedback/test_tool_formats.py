"""Label Studio and Argilla: read their exports (fixtures written from their public docs),
import the annotations as judgements, export back, and export a datasets folder with a card."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rlhfkit.cli import app
from rlhfkit.data import DataError, detect_format, read_items, record_to_item
from rlhfkit.feedback import repo
from rlhfkit.feedback.db import Database
from rlhfkit.feedback.export import export_items
from rlhfkit.schema import judgement_to_pairs

FIX = Path(__file__).parent / "fixtures"
runner = CliRunner()


def test_labelstudio_tasks_become_items_with_pairwise_annotations():
    tasks = json.loads((FIX / "labelstudio_rlhf.json").read_text())
    assert {detect_format(t) for t in tasks} == {"labelstudio"}
    first, second = (record_to_item(t, "labelstudio") for t in tasks)
    assert first.prompt == "How do I reverse a list in Python?" and first.id == "ls-101"
    assert [r.text[:9] for r in first.responses] == ["Use slici", "Python li"]
    # the cancelled annotation (id 5003) is left out
    assert [(a.annotator_id, a.judgement.choice, a.time_spent_s) for a in first.annotations] == [
        ("labelstudio-user-3", "a", 14.2), ("maria@example.org", "a", 9.8)]
    assert [judgement_to_pairs(a.judgement) for a in second.annotations] == [[(1, 0)]]  # "right" = answer2
    bad = json.loads(json.dumps(tasks[0]))
    bad["annotations"][0]["result"][0]["value"]["selected"] = "middle"
    with pytest.raises(DataError, match="left.*right"):
        record_to_item(bad, "labelstudio")


def test_argilla_records_become_rankings_with_ties_and_only_submitted_responses():
    items = read_items(FIX / "argilla_preference.jsonl")
    one, two = items
    assert one.id == "arg-1" and len(one.responses) == 3
    assert [(a.annotator_id[:8], a.judgement.tiers) for a in one.annotations] == [
        ("0a6f7b7e", [[0], [2], [1]]), ("7d2e4c1a", [[0, 2], [1]])]  # the draft is left out
    assert two.annotations[0].judgement.tiers == [[0], [2], [1]]  # plain list of names, best first
    bad = json.loads((FIX / "argilla_preference.jsonl").read_text().splitlines()[1])
    bad["responses"][0]["values"]["preference"]["value"] = ["response-9"]
    with pytest.raises(DataError, match="response-9"):
        record_to_item(bad, "argilla")


def _cli_import(tmp_path, fixture, mode):
    db = str(tmp_path / "f.db")
    r = runner.invoke(app, ["feedback", "import", str(FIX / fixture), "-p", "imp", "--db", db, "--mode", mode,
                            "--overlap", "2"])
    assert r.exit_code == 0, r.output
    return db, r.output


def test_import_labelstudio_then_export_back(tmp_path):
    db, out = _cli_import(tmp_path, "labelstudio_rlhf.json", "pairwise")
    assert "added 2 items" in out and "3 existing judgements imported" in out
    target = tmp_path / "ls_out.json"
    r = runner.invoke(app, ["feedback", "export", "-p", "imp", "-f", "labelstudio", "-o", str(target), "--db", db])
    assert r.exit_code == 0, r.output
    tasks = json.loads(target.read_text())  # one JSON array
    again = [record_to_item(t, "labelstudio") for t in tasks]
    assert [[(a.annotator_id, a.judgement.choice) for a in it.annotations] for it in again] == [
        [("labelstudio-user-3", "a"), ("maria@example.org", "a")], [("labelstudio-user-3", "b")]]
    assert [it.id for it in again] == ["ls-101", "ls-102"]


def test_import_argilla_then_export_back_and_as_trl_pairs(tmp_path):
    db, out = _cli_import(tmp_path, "argilla_preference.jsonl", "ranking")
    assert "added 2 items" in out and "3 existing judgements imported" in out
    target = tmp_path / "arg_out.jsonl"
    assert runner.invoke(app, ["feedback", "export", "-p", "imp", "-f", "argilla", "-o", str(target),
                               "--db", db]).exit_code == 0
    rec = json.loads(target.read_text().splitlines()[0])
    assert rec["fields"]["response-1"].startswith("A hash table stores")
    assert sorted(tuple((v["value"], v["rank"]) for v in r["values"]["preference"]["value"]) for r in rec["responses"]) == [
        (("response-1", 1), ("response-3", 1), ("response-2", 2)),
        (("response-1", 1), ("response-3", 2), ("response-2", 3))]
    assert sorted(a.judgement.tiers for a in record_to_item(rec, "argilla").annotations) == [
        [[0], [2], [1]], [[0, 2], [1]]]
    r = runner.invoke(app, ["feedback", "export", "-p", "imp", "-f", "trl-pairs", "-o", str(target), "--db", db])
    assert r.exit_code == 0 and "wrote 8 lines" in r.output


def test_hf_dataset_folder_with_card(tmp_path):
    datasets = pytest.importorskip("datasets")
    db, _ = _cli_import(tmp_path, "argilla_preference.jsonl", "ranking")
    out = tmp_path / "ds"
    r = runner.invoke(app, ["feedback", "export", "-p", "imp", "-f", "trl-pairs", "-o", str(out), "--db", db,
                            "--dataset", "--split", "validation"])
    assert r.exit_code == 0, r.output
    ds = datasets.load_from_disk(str(out))["validation"]
    with Database(db).read() as s:
        items = export_items(s, repo.project_by_name(s, "imp"))
    expected = sum(len(judgement_to_pairs(a.judgement)) for it in items for a in it.annotations)
    assert len(ds) == expected == 3 + 2 + 3  # strict rankings of 3: 3 pairs each; with a tie: 2
    assert set(ds.column_names) >= {"prompt", "chosen", "rejected"}
    card = (out / "README.md").read_text()
    assert f"num_examples: {expected}" in card and "| 0a6f7b7e-1111-4c2d-9e6a-2f6b3c4d5e6f | 2 |" in card
    assert "| split | validation |" in card and "| adjudicated | prefer |" in card and "Fleiss' kappa" in card
    r = runner.invoke(app, ["feedback", "export", "-p", "imp", "-f", "hh", "-o", str(out), "--db", db, "--dataset"])
    assert r.exit_code == 2 and "--dataset writes one of" in r.output
