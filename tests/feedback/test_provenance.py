"""Label provenance over HTTP: the submit body's source and annotator_config are stored and exported."""

import json

from rlhfkit.feedback import repo
from rlhfkit.feedback.export import export_lines
from rlhfkit.schema import PreferenceItem
from tests.feedback.conftest import make_items


def _submit(env, who, pid, jid, **extra):
    a = env.next(who, pid)["assignment"]
    body = {"id": jid, "judgement": {"kind": "ranking", "tiers": [[0], [1], [2]]}, **extra}
    return env.client.post(f"/api/assignments/{a['assignment_id']}/judgement", json=body, headers=env.hdr(who))


def _export(env, pid, fmt="rlhfkit"):
    with env.db.read() as s:
        return export_lines(s, repo.get_project(s, pid), fmt)[0]


def test_source_and_config_are_stored_and_exported(env):
    pid = env.project(items=make_items(1), overlap=3)
    judge = {"model": "judge-7b", "prompt_version": 3, "temperature": 0.0}
    assert _submit(env, "alice", pid, "j1").status_code == 201
    assert _submit(env, "bob", pid, "j2", source="model_judge", annotator_config=judge).status_code == 201
    assert _submit(env, "carol", pid, "j3", source="simulated", annotator_config={"flip_rate": 0.2}).status_code == 201
    [item] = [PreferenceItem.model_validate_json(line) for line in _export(env, pid)]
    by = {a.annotator_id: a for a in item.annotations}
    assert (by["alice"].source, by["bob"].source, by["carol"].source) == ("human", "model_judge", "simulated")
    assert item.metadata["model_judges"] == {"bob": judge}
    assert item.metadata["simulated_annotators"] == {"carol": {"flip_rate": 0.2}}
    assert "annotator_configs" not in item.metadata  # alice sent none
    pairs = [json.loads(line) for line in _export(env, pid, "trl-pairs")]
    assert sorted({(p["annotator"], p["label_source"]) for p in pairs}) == [
        ("alice", "human"), ("bob", "model_judge"), ("carol", "simulated")]


def test_bad_source_or_config_is_422_and_no_token_401(env):
    pid = env.project(items=make_items(1), overlap=1)
    assert _submit(env, "alice", pid, "j1", source="robot").status_code == 422
    assert _submit(env, "alice", pid, "j1", annotator_config=["not", "a", "dict"]).status_code == 422
    r = _submit(env, "alice", pid, "j1", annotator_config={"notes": "x" * 5_000})
    assert r.status_code == 422 and "4000" in r.text
    a = env.next("alice", pid)["assignment"]
    r = env.client.post(f"/api/assignments/{a['assignment_id']}/judgement",
                        json={"id": "j1", "judgement": {"kind": "all_bad"}, "source": "simulated"})
    assert r.status_code == 401
    assert _submit(env, "alice", pid, "j1", source="simulated").status_code == 201
