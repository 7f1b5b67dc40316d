"""Rating (1-7 Likert) and thumbs up/down projects: validation, storage, export, agreement."""

import json

import numpy as np

from rlhfkit.feedback import repo
from rlhfkit.feedback.agreement import krippendorff_alpha
from rlhfkit.feedback.export import export_lines
from rlhfkit.schema import PreferenceItem
from tests.feedback.conftest import make_items


def _rate(k, scores):
    return {"kind": "per_response", "judgements": [
        {"kind": "rating", "response": i, "score": s, "scale_min": 1, "scale_max": 7} for i, s in zip(k, scores)]}


def _thumbs(k, ups):
    return {"kind": "per_response", "judgements": [
        {"kind": "binary", "response": i, "thumbs_up": u} for i, u in zip(k, ups)]}


def _post(env, who, aid, jid, judgement):
    return env.client.post(f"/api/assignments/{aid}/judgement", json={"id": jid, "judgement": judgement},
                           headers=env.hdr(who))


def test_rating_project_stores_and_exports_one_annotation_per_response(env):
    pid = env.project(items=make_items(1), overlap=1, mode="rating")
    a = env.next("alice", pid)["assignment"]
    assert a["mode"] == "rating" and len(a["responses"]) == 3  # every response is shown
    aid = a["assignment_id"]
    bad = {
        "missing one": _rate([0, 1], [1, 2]),
        "twice": _rate([0, 0, 1], [1, 2, 3]),
        "half point": _rate([0, 1, 2], [1, 2.5, 3]),
        "other scale": {"kind": "per_response", "judgements": [
            {"kind": "rating", "response": i, "score": 3, "scale_min": 0, "scale_max": 10} for i in range(3)]},
        "thumbs": _thumbs([0, 1, 2], [True, False, True]),
        "a ranking": {"kind": "ranking", "tiers": [[0], [1], [2]]},
        "out of scale": _rate([0, 1, 2], [1, 2, 8]),
    }
    for why, j in bad.items():
        assert _post(env, "alice", aid, "x", j).status_code == 422, why
    r = _post(env, "alice", aid, "r1", _rate([2, 0, 1], [7, 1, 4]))
    assert r.status_code == 201, r.text
    with env.db.read() as s:
        [line], _ = export_lines(s, repo.get_project(s, pid), "rlhfkit")
    item = PreferenceItem.model_validate_json(line)
    assert [(x.judgement.kind, x.judgement.response, x.judgement.score) for x in item.annotations] == [
        ("rating", 0, 1.0), ("rating", 1, 4.0), ("rating", 2, 7.0)]
    assert len({x.id for x in item.annotations}) == 3 and all(x.annotator_id == "alice" for x in item.annotations)
    assert _post(env, "alice", aid, "r1", _rate([2, 0, 1], [7, 1, 4])).status_code == 200  # idempotent retry


def test_thumbs_project_exports_trl_unpaired(env):
    pid = env.project(items=make_items(2, k=2), overlap=1, mode="binary")
    for n in range(2):
        aid = env.next("bob", pid)["assignment"]["assignment_id"]
        assert _post(env, "bob", aid, f"t{n}", _thumbs([0, 1], [True, False])).status_code == 201
    r = env.client.get(f"/api/admin/projects/{pid}/export?format=trl-unpaired", headers=env.hdr("admin"))
    rows = [json.loads(line) for line in r.text.splitlines()]
    assert [(x["response_index"], x["label"]) for x in rows] == [(0, True), (1, False)] * 2
    assert rows[0]["completion"] == "answer 0 to question 0" and rows[0]["prompt"] == "question 0?"
    assert env.client.get(f"/api/admin/projects/{pid}/export?format=trl-unpaired").status_code == 401


def test_rating_agreement_is_krippendorff_interval_over_item_response_units(env):
    pid = env.project(items=make_items(2), overlap=3, mode="rating")
    scores = {"alice": [[7, 1, 4], [6, 2, 2]], "bob": [[6, 1, 5], [7, 3, 1]], "carol": [[7, 2, 4], [5, 1, 3]]}
    for who, per_item in scores.items():
        for _ in range(2):
            a = env.next(who, pid)["assignment"]
            n = int(a["responses"][0]["text"].split("question ")[1].split()[0])
            assert _post(env, who, a["assignment_id"], f"{who}{n}", _rate([0, 1, 2], per_item[n])).status_code == 201
    st = env.client.get(f"/api/admin/projects/{pid}/stats", headers=env.hdr("admin")).json()["agreement"]
    data = np.array([[v for item in scores[w] for v in item] for w in ("alice", "bob", "carol")], dtype=float)
    assert st["response_units"] == 6
    assert abs(st["krippendorff_alpha_interval_ratings"] - krippendorff_alpha(data, "interval")) < 1e-12
    # independent check: interval alpha = 1 - D_o / D_e over all pairable values (no missing data here)
    vals = data.T  # (units, raters)
    n = vals.size
    d_o = sum(((u[:, None] - u[None, :]) ** 2).sum() / (len(u) - 1) for u in vals) / n
    flat = vals.ravel()
    d_e = ((flat[:, None] - flat[None, :]) ** 2).sum() / (n * (n - 1))
    assert abs(st["krippendorff_alpha_interval_ratings"] - (1 - d_o / d_e)) < 1e-12
