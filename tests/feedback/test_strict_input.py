"""Strict input (issue 14): non-finite numbers are a JSON 422, no type coercion, size limits hold
for chunked bodies, and idempotency keys are scoped per annotator."""

import json

import pytest

from rlhfkit.feedback.app import create_app
from rlhfkit.feedback.models import Judgement
from tests.feedback.conftest import make_items

RANK3 = {"kind": "ranking", "tiers": [[0], [1], [2]]}


def _raw_post(env, url, text, who):
    # Python's json module writes NaN/Infinity; send the raw text so the server sees exactly that.
    return env.client.post(url, content=text.encode(), headers={**env.hdr(who), "Content-Type": "application/json"})


def _assignment(env, pid, who="alice"):
    return env.next(who, pid)["assignment"]["assignment_id"]


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_time_spent_is_a_json_422(env, number):
    pid = env.project(items=make_items(1))
    aid = _assignment(env, pid)
    text = '{"id": "j1", "judgement": %s, "time_spent_s": %s}' % (json.dumps(RANK3), number)
    r = _raw_post(env, f"/api/assignments/{aid}/judgement", text, "alice")
    assert r.status_code == 422, r.text
    body = json.loads(r.text)  # valid JSON (a NaN in it would make this raise)
    assert "not a number JSON allows" in json.dumps(body)


def test_non_finite_tier_and_import_score_are_json_422(env):
    pid = env.project(items=make_items(1))
    aid = _assignment(env, pid)
    r = _raw_post(env, f"/api/assignments/{aid}/judgement",
                  '{"id": "j1", "judgement": {"kind": "ranking", "tiers": [[NaN], [1], [2]]}}', "alice")
    assert r.status_code == 422 and json.loads(r.text)
    item = make_items(1, prefix="new")[0].model_dump(mode="json")
    item["annotations"] = [{"judgement": {"kind": "rating", "response": 0, "score": "SCORE"}}]
    text = json.dumps({"items": [item]}).replace('"SCORE"', "NaN")
    r = _raw_post(env, f"/api/admin/projects/{pid}/items", text, "admin")
    assert r.status_code == 422 and json.loads(r.text)


def test_validation_errors_never_echo_invalid_json(env):
    """The error handler itself is safe: an error whose input is NaN still renders as JSON."""
    from fastapi.exceptions import RequestValidationError

    from rlhfkit.feedback.http_guard import validation_error

    import asyncio

    exc = RequestValidationError([{"type": "x", "loc": ("body", "t"), "msg": "bad", "input": float("nan")}])
    resp = asyncio.run(validation_error(None, exc))
    assert json.loads(resp.body)["detail"][0]["input"] == "nan"


@pytest.mark.parametrize("judgement, time_spent", [
    ({"kind": "ranking", "tiers": [["0"], ["1"], ["2"]]}, None),
    ({"kind": "ranking", "tiers": [[True], [False], [2]]}, None),
    ({"kind": "ranking", "tiers": [[0.0], [1.0], [2.0]]}, None),
    (RANK3, "5"),
    (RANK3, True),
])
def test_no_silent_type_coercion(env, judgement, time_spent):
    pid = env.project(items=make_items(1))
    aid = _assignment(env, pid)
    body = {"id": "j1", "judgement": judgement}
    if time_spent is not None:
        body["time_spent_s"] = time_spent
    r = env.client.post(f"/api/assignments/{aid}/judgement", json=body, headers=env.hdr("alice"))
    assert r.status_code == 422, r.text
    with env.db.read() as s:
        assert s.query(Judgement).count() == 0


def test_integer_time_spent_is_still_a_number(env):
    pid = env.project(items=make_items(1))
    aid = _assignment(env, pid)
    r = env.client.post(f"/api/assignments/{aid}/judgement", json={"id": "j1", "judgement": RANK3, "time_spent_s": 5},
                        headers=env.hdr("alice"))
    assert r.status_code == 201, r.text


def test_admin_bodies_are_strict_too(env):
    r = env.client.post("/api/admin/projects", json={"name": "x", "overlap": "3"}, headers=env.hdr("admin"))
    assert r.status_code == 422
    r = env.client.post("/api/admin/projects", json={"name": "x", "overlap": 3.0}, headers=env.hdr("admin"))
    assert r.status_code == 422
    r = env.client.post("/api/admin/projects", json={"name": "x", "overlap": 3}, headers=env.hdr("admin"))
    assert r.status_code == 201


def test_invalid_body_without_token_is_401_not_422(env):
    r = env.client.post("/api/assignments/1/judgement", content=b'{"id": "x", "time_spent_s": NaN}',
                        headers={"Content-Type": "application/json"})
    assert r.status_code == 401


@pytest.mark.parametrize("critique, stored", [("   \n\t ", None), ("  fine  ", "fine"), (None, None)])
def test_whitespace_only_critique_is_none(env, critique, stored):
    pid = env.project(items=make_items(1))
    aid = _assignment(env, pid)
    r = env.client.post(f"/api/assignments/{aid}/judgement", json={"id": "j1", "judgement": RANK3, "critique": critique},
                        headers=env.hdr("alice"))
    assert r.status_code == 201 and r.json()["critique"] == stored
    with env.db.read() as s:
        assert s.query(Judgement).one().critique == stored


def test_chunked_body_over_the_limit_is_413(env):
    from fastapi.testclient import TestClient

    client = TestClient(create_app(env.db, max_body_bytes=1_000))

    def chunks():  # a generator body is sent chunked, without Content-Length
        for _ in range(10):
            yield b" " * 200

    r = client.post("/api/admin/projects", content=chunks(),
                    headers={**env.hdr("admin"), "Content-Type": "application/json"})
    assert "content-length" not in {k.lower() for k in r.request.headers}
    assert r.status_code == 413, r.text
    assert "larger than 1000 bytes" in r.json()["detail"]
    small = client.post("/api/admin/projects", content=iter([b'{"name": ', b'"chunked"}']),
                        headers={**env.hdr("admin"), "Content-Type": "application/json"})
    assert small.status_code == 201, small.text  # a chunked body under the limit still works


def test_judgement_ids_are_scoped_per_annotator(env):
    """Bob reusing Alice's id must not learn it exists: his submission is simply stored."""
    pid = env.project(items=make_items(2), overlap=2)
    alice = env.rank_submit("alice", pid, "shared-id")
    bob = env.rank_submit("bob", pid, "shared-id")
    assert alice["created"] and bob["created"] and bob["id"] == "shared-id"
    assert env.client.get("/api/judgements/shared-id", headers=env.hdr("bob")).json()["assignment_id"] == bob["assignment_id"]
    r = env.client.get("/api/judgements/shared-id", headers=env.hdr("carol"))
    assert r.status_code == 404
    # Bob's own retry of the id on another assignment is still a conflict (his id, his business)
    nxt = env.next("bob", pid)["assignment"]
    r = env.client.post(f"/api/assignments/{nxt['assignment_id']}/judgement",
                        json={"id": "shared-id", "judgement": RANK3}, headers=env.hdr("bob"))
    assert r.status_code == 409 and "you already used" in r.json()["detail"]
    with env.db.read() as s:
        assert s.query(Judgement).filter_by(client_id="shared-id").count() == 2
