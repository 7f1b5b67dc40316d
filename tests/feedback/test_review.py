"""Review: the disagreement queue, judgements side by side, adjudication preferred by the export."""

import json

from rlhfkit.feedback import repo
from rlhfkit.feedback.review import item_disagreement
from rlhfkit.schema import PreferenceItem, judgement_to_pairs
from tests.feedback.conftest import make_items

P = lambda a, b, c: {"kind": "pairwise", "a": a, "b": b, "choice": c}  # noqa: E731


def _reviewer(env, name="rita"):
    with env.db.session() as s:
        _a, token = repo.add_annotator(s, name, role="reviewer")
    env.tokens[name] = token


def _rank_all(env, pid, orders):
    """orders: annotator -> {item external id: best-first order}."""
    for who, per_item in orders.items():
        while True:
            nxt = env.next(who, pid)
            if nxt["done"]:
                break
            a = nxt["assignment"]
            ext = a["responses"][0]["text"].split("question ")[1].split()[0]
            tiers = [[i] for i in per_item[f"it{ext}"]]
            r = env.client.post(f"/api/assignments/{a['assignment_id']}/judgement",
                                json={"id": f"{who}-{ext}", "judgement": {"kind": "ranking", "tiers": tiers}},
                                headers=env.hdr(who))
            assert r.status_code == 201, r.text


def test_item_disagreement_closed_form():
    # three annotators on one pair: labels lo, lo, hi -> 2 of 3 annotator pairs disagree
    assert abs(item_disagreement([P(0, 1, "a"), P(0, 1, "a"), P(0, 1, "b")]) - 2 / 3) < 1e-12
    assert item_disagreement([P(0, 1, "a"), P(1, 0, "b")]) == 0.0  # the same preference, either way round
    assert item_disagreement([P(0, 1, "a")]) is None
    # ratings: |7 - 1| / 6 = 1 on response 0, 0 on response 1 -> mean 0.5
    rate = lambda s0, s1: {"kind": "per_response", "judgements": [  # noqa: E731
        {"kind": "rating", "response": 0, "score": s0}, {"kind": "rating", "response": 1, "score": s1}]}
    assert abs(item_disagreement([rate(7, 4), rate(1, 4)]) - 0.5) < 1e-12


def test_queue_side_by_side_and_adjudication_preferred_by_export(env):
    _reviewer(env)
    pid = env.project(items=make_items(3), overlap=3)
    agree = [0, 1, 2]
    _rank_all(env, pid, {
        "alice": {"it0": agree, "it1": [0, 1, 2], "it2": [2, 1, 0]},
        "bob": {"it0": agree, "it1": [0, 2, 1], "it2": [0, 1, 2]},
        "carol": {"it0": agree, "it1": [0, 1, 2], "it2": [1, 0, 2]},
    })
    q = env.client.get(f"/api/review/projects/{pid}/queue", headers=env.hdr("rita"))
    assert q.status_code == 200
    queue = q.json()
    assert [r["external_id"] for r in queue] == ["it2", "it1"]  # it0 (full agreement) is not queued
    assert queue[0]["disagreement"] > queue[1]["disagreement"] > 0
    # it1: only the pair (1, 2) is disputed (1 of 3 annotator pairs agree): (1 - 1/3) / 3 units
    assert abs(queue[1]["disagreement"] - round((2 / 3) / 3, 4)) < 1e-12
    item_id = queue[0]["item_id"]
    view = env.client.get(f"/api/review/items/{item_id}", headers=env.hdr("rita")).json()
    assert sorted(j["annotator"] for j in view["judgements"]) == ["alice", "bob", "carol"]
    assert [r["index"] for r in view["responses"]] == [0, 1, 2] and view["adjudication"] is None
    r = env.client.post(f"/api/review/items/{item_id}/adjudication", headers=env.hdr("rita"),
                        json={"judgement": {"kind": "ranking", "tiers": [[1], [0, 2]]}, "note": "1 is right"})
    assert r.status_code == 200 and r.json()["adjudication"]["reviewer"] == "rita"
    bad = env.client.post(f"/api/review/items/{item_id}/adjudication", headers=env.hdr("rita"),
                          json={"judgement": {"kind": "ranking", "tiers": [[1], [0]]}})
    assert bad.status_code == 422  # every response must be placed, as for annotators
    # export prefers the adjudication and keeps the originals; ignore gives the originals
    text = env.client.get(f"/api/admin/projects/{pid}/export", headers=env.hdr("admin")).text
    items = {it.id: it for it in map(PreferenceItem.model_validate_json, text.splitlines())}
    it2 = items["it2"]
    assert [a.annotator_id for a in it2.annotations] == ["rita"]
    assert judgement_to_pairs(it2.annotations[0].judgement) == [(1, 0), (1, 2)]
    assert it2.metadata["feedback"]["adjudicated"]["note"] == "1 is right"
    assert sorted(a["annotator_id"] for a in it2.metadata["feedback"]["original_annotations"]) == ["alice", "bob", "carol"]
    assert len(items["it1"].annotations) == 3  # not adjudicated: unchanged
    pairs = env.client.get(f"/api/admin/projects/{pid}/export?format=trl-pairs", headers=env.hdr("admin")).text
    it2_pairs = [json.loads(x) for x in pairs.splitlines() if json.loads(x)["item_id"] == "it2"]
    assert [(p["chosen_index"], p["rejected_index"], p["annotator"]) for p in it2_pairs] == [(1, 0, "rita"), (1, 2, "rita")]
    orig = env.client.get(f"/api/admin/projects/{pid}/export?adjudicated=ignore", headers=env.hdr("admin")).text
    assert len([PreferenceItem.model_validate_json(x) for x in orig.splitlines() if '"it2"' in x][0].annotations) == 3
    # the judgements themselves are untouched, and agreement statistics are computed on them
    st = env.client.get(f"/api/admin/projects/{pid}/stats", headers=env.hdr("admin")).json()
    assert st["progress"]["judgements"] == 9


def test_gold_failures_come_first(env):
    _reviewer(env)
    pid = env.project(items=make_items(1), gold_items=make_items(1, prefix="g", gold=True), overlap=1, gold_rate=1.0)
    nxt = env.next("alice", pid)["assignment"]  # gold_rate 1: the gold item comes first
    with env.db.read() as s:
        from rlhfkit.feedback.models import Item

        gold_id = s.query(Item.id).filter(Item.is_gold).scalar()
    assert env.client.post(
        f"/api/assignments/{nxt['assignment_id']}/judgement", headers=env.hdr("alice"),
        json={"id": "g1", "judgement": {"kind": "ranking", "tiers": [[2], [1], [0]]}}).status_code == 201
    queue = env.client.get(f"/api/review/projects/{pid}/queue", headers=env.hdr("rita")).json()
    assert [(r["item_id"], r["reason"], r["failed_gold"]) for r in queue] == [(gold_id, "gold", 1)]
    view = env.client.get(f"/api/review/items/{gold_id}", headers=env.hdr("rita")).json()
    assert view["gold_answer"] == {"kind": "ranking", "tiers": [[0], [1], [2]]}


def test_review_auth_paths(env):
    _reviewer(env)
    pid = env.project(items=make_items(1), overlap=1)
    env.rank_submit("alice", pid, "a1")
    with env.db.read() as s:
        from rlhfkit.feedback.models import Item

        item_id = s.query(Item.id).scalar()
    urls = [("GET", f"/api/review/projects/{pid}/queue"), ("GET", f"/api/review/items/{item_id}"),
            ("POST", f"/api/review/items/{item_id}/adjudication")]
    body = {"judgement": {"kind": "all_bad"}}
    for method, url in urls:
        assert env.client.request(method, url, json=body).status_code == 401, url
        assert env.client.request(method, url, json=body, headers=env.hdr("alice")).status_code == 403, url
        assert env.client.request(method, url, json=body, headers=env.hdr("admin")).status_code == 403, url
    assert env.client.get("/api/review/items/999", headers=env.hdr("rita")).status_code == 404
    assert env.client.get("/api/review/projects/999/queue", headers=env.hdr("rita")).status_code == 404
    # a members-only project the reviewer is not in is 404, items included
    env.client.post(f"/api/admin/projects/{pid}/members", json={"add": ["alice"]}, headers=env.hdr("admin"))
    assert env.client.get(f"/api/review/items/{item_id}", headers=env.hdr("rita")).status_code == 404
    assert env.client.post(f"/api/review/items/{item_id}/adjudication", json=body,
                           headers=env.hdr("rita")).status_code == 404
    # pages: annotators get 403, nobody 401
    assert env.client.get("/review", headers=env.hdr("alice")).status_code == 403
    assert env.client.get("/review").status_code == 401
    assert env.client.get(f"/review/{pid}", headers=env.hdr("rita")).status_code == 404
