"""The JSON API: the 401/403/404 matrix on every endpoint, idempotency, validation and limits."""

import pytest
from fastapi.routing import APIRoute

from tests.feedback.conftest import make_items

RANK3 = {"kind": "ranking", "tiers": [[0], [1], [2]]}
SAMPLE_BODIES = {
    ("POST", "/api/assignments/{assignment_id}/judgement"): {"id": "x1", "judgement": RANK3},
    ("POST", "/api/assignments/{assignment_id}/skip"): {"reason": "cannot judge"},
    ("POST", "/api/admin/projects"): {"name": "new"},
    ("POST", "/api/admin/projects/{project_id}/items"): {"items": [make_items(1)[0].model_dump(mode="json")]},
    ("POST", "/api/admin/annotators"): {"name": "dave"},
    ("PATCH", "/api/admin/projects/{project_id}"): {"archived": True},
    ("POST", "/api/admin/projects/{project_id}/members"): {"add": ["alice"]},
    ("POST", "/api/review/items/{item_id}/adjudication"): {"judgement": RANK3},
}
UNKNOWN = {"assignment_id": "99999", "project_id": "99999", "judgement_id": "nope", "item_id": "99999"}


def api_routes(app):
    for r in app.routes:
        if isinstance(r, APIRoute) and r.path.startswith("/api/") and r.path != "/api/health":
            for method in r.methods:
                yield method, r.path


def call(env, method, path, who, ids=UNKNOWN):
    url = path.format(**ids)
    return env.client.request(method, url, json=SAMPLE_BODIES.get((method, path)), headers=env.hdr(who))


def test_every_endpoint_needs_a_token(env):
    routes = list(api_routes(env.app))
    assert len(routes) >= 12, routes  # the matrix really covers the API
    for method, path in routes:
        assert call(env, method, path, None).status_code == 401, (method, path)
        r = env.client.request(method, path.format(**UNKNOWN), json=SAMPLE_BODIES.get((method, path)),
                               headers={"Authorization": "Bearer not-a-real-token"})
        assert r.status_code == 401, (method, path)


def test_roles_are_enforced(env):
    for method, path in api_routes(env.app):
        if path.startswith("/api/admin/"):
            assert call(env, method, path, "alice").status_code == 403, (method, path)
        else:
            assert call(env, method, path, "admin").status_code == 403, (method, path)


def test_unknown_ids_are_404(env):
    from rlhfkit.feedback import repo

    with env.db.session() as s:
        env.tokens["rita"] = repo.add_annotator(s, "rita", role="reviewer")[1]
    for method, path in api_routes(env.app):
        if "{" not in path:
            continue
        who = "admin" if path.startswith("/api/admin/") else "rita" if path.startswith("/api/review/") else "alice"
        assert call(env, method, path, who).status_code == 404, (method, path)


def test_other_annotators_work_is_404(env):
    pid = env.project(items=make_items(2), overlap=2)
    a = env.next("alice", pid)["assignment"]
    aid = a["assignment_id"]
    out = env.rank_submit("bob", pid, "bob-1")
    ids = {"assignment_id": str(aid), "project_id": str(pid), "judgement_id": out["id"]}
    # bob acting on alice's assignment, alice reading/retracting bob's judgement
    for method, path in [("POST", "/api/assignments/{assignment_id}/judgement"), ("POST", "/api/assignments/{assignment_id}/skip")]:
        assert call(env, method, path, "bob", ids).status_code == 404
    for method in ("GET", "DELETE"):
        assert call(env, method, "/api/judgements/{judgement_id}", "alice", ids).status_code == 404
    assert call(env, "GET", "/api/judgements/{judgement_id}", "bob", ids).status_code == 200


def test_blind_assignment_shows_no_other_judgements(env):
    pid = env.project(items=make_items(1), overlap=3)
    env.rank_submit("alice", pid, "a1", [2, 1, 0])
    nxt = env.next("bob", pid)
    a = nxt["assignment"]
    assert set(a) == {"assignment_id", "project_id", "mode", "prompt", "responses", "shown_order", "expires_at"}
    assert set(nxt["progress"]) == {"judged", "skipped", "today", "daily_cap"} and nxt["progress"]["judged"] == 0
    assert all(set(r) == {"index", "text", "empty"} for r in a["responses"])


def test_submission_is_idempotent(env):
    pid = env.project(items=make_items(2), overlap=1)
    a = env.next("alice", pid)["assignment"]
    url = f"/api/assignments/{a['assignment_id']}/judgement"
    body = {"id": "client-123", "judgement": RANK3, "critique": "fine", "time_spent_s": 3.5}
    first = env.client.post(url, json=body, headers=env.hdr("alice"))
    again = env.client.post(url, json=body, headers=env.hdr("alice"))
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["created"] is True and again.json()["created"] is False
    assert again.json()["id"] == "client-123"
    stats = env.client.get(f"/api/admin/projects/{pid}/stats", headers=env.hdr("admin")).json()
    assert stats["progress"]["judgements"] == 1
    # a different judgement under a used id, or a second judgement of the assignment, conflicts
    b = env.next("alice", pid)["assignment"]
    r = env.client.post(f"/api/assignments/{b['assignment_id']}/judgement", json=body, headers=env.hdr("alice"))
    assert r.status_code == 409
    r = env.client.post(url, json={**body, "id": "client-456"}, headers=env.hdr("alice"))
    assert r.status_code == 409 and "already done" in r.json()["detail"]


def test_judgement_validation(env):
    pid = env.project(items=make_items(1), overlap=1)
    a = env.next("alice", pid)["assignment"]
    url = f"/api/assignments/{a['assignment_id']}/judgement"
    bad = [
        ({"kind": "ranking", "tiers": [[0], [1]]}, 422, "every response"),
        ({"kind": "ranking", "tiers": [[0], [1], [7]]}, 422, "every response"),
        ({"kind": "ranking", "tiers": [[0], [0], [1]]}, 422, "appears twice"),
        ({"kind": "pairwise", "a": 0, "b": 1, "choice": "a"}, 422, "collects rankings"),
        ({"kind": "nonsense"}, 422, "Input tag 'nonsense' found using 'kind' does not match"),
    ]
    for n, (j, status, words) in enumerate(bad):
        r = env.client.post(url, json={"id": f"v{n}", "judgement": j}, headers=env.hdr("alice"))
        assert r.status_code == status, (j, r.text)
        assert words in r.text
    ok = env.client.post(url, json={"id": "ok", "judgement": {"kind": "ranking", "tiers": [[2, 0], [1]]}},
                         headers=env.hdr("alice"))
    assert ok.status_code == 201  # ties are allowed


def test_pairwise_mode_with_ties_and_both_bad(env):
    pid = env.project(items=make_items(3, k=3), overlap=1, mode="pairwise")
    for n, choice in enumerate(["tie", "both_bad", "a"]):
        a = env.next("alice", pid)["assignment"]
        assert len(a["responses"]) == 2 and a["mode"] == "pairwise"
        shown = [r["index"] for r in a["responses"]]
        assert shown == a["shown_order"][:2]
        url = f"/api/assignments/{a['assignment_id']}/judgement"
        wrong = {"kind": "pairwise", "a": shown[1], "b": shown[0], "choice": choice}
        assert env.client.post(url, json={"id": f"w{n}", "judgement": wrong}, headers=env.hdr("alice")).status_code == 422
        j = {"kind": "pairwise", "a": shown[0], "b": shown[1], "choice": choice}
        assert env.client.post(url, json={"id": f"p{n}", "judgement": j}, headers=env.hdr("alice")).status_code == 201


def test_limits_give_clear_4xx(env):
    pid = env.project(items=make_items(1), overlap=1)
    a = env.next("alice", pid)["assignment"]
    url = f"/api/assignments/{a['assignment_id']}/judgement"
    r = env.client.post(url, json={"id": "c", "judgement": RANK3, "critique": "x" * 10_001}, headers=env.hdr("alice"))
    assert r.status_code == 422 and "10000" in r.text
    r = env.client.post(url, json={"id": "bad id with spaces", "judgement": RANK3}, headers=env.hdr("alice"))
    assert r.status_code == 422
    r = env.client.post(url, content=b"{" + b" " * 2_100_000 + b"}", headers={**env.hdr("alice"), "Content-Type": "application/json"})
    assert r.status_code == 413 and "larger than" in r.json()["detail"]
    r = env.client.post(f"/api/assignments/{a['assignment_id']}/skip", json={"reason": ""}, headers=env.hdr("alice"))
    assert r.status_code == 422
    r = env.client.post(url, json={"id": "n", "judgement": RANK3, "critique": "a\x00b"}, headers=env.hdr("alice"))
    assert r.status_code == 422 and "NUL" in r.text
    r = env.client.post("/api/admin/projects", json={"name": "q", "overlap": 0}, headers=env.hdr("admin"))
    assert r.status_code == 422
    r = env.client.post("/api/admin/projects", json={"name": "p"}, headers=env.hdr("admin"))
    assert r.status_code == 409  # duplicate name
    item = make_items(1)[0].model_dump(mode="json")
    r = env.client.post(f"/api/admin/projects/{pid}/items", json={"items": [{**item, "id": "i" * 201}]}, headers=env.hdr("admin"))
    assert r.status_code == 422 and "longer than 200" in r.text
    item["responses"][0]["text"] = "y" * 100_001
    r = env.client.post(f"/api/admin/projects/{pid}/items", json={"items": [item]}, headers=env.hdr("admin"))
    assert r.status_code == 422 and "items[0]" in r.text


def test_skip_and_retract(env):
    pid = env.project(items=make_items(2), overlap=1)
    a = env.next("alice", pid)["assignment"]
    r = env.client.post(f"/api/assignments/{a['assignment_id']}/skip", json={"reason": "offensive"}, headers=env.hdr("alice"))
    assert r.json()["status"] == "skipped"
    b = env.next("alice", pid)["assignment"]
    assert b["assignment_id"] != a["assignment_id"]
    env.client.post(f"/api/assignments/{b['assignment_id']}/judgement", json={"id": "r1", "judgement": RANK3}, headers=env.hdr("alice"))
    assert env.next("alice", pid)["done"] is True  # skipped item is never served again to alice
    r = env.client.delete("/api/judgements/r1", headers=env.hdr("alice"))
    assert r.status_code == 200 and r.json()["assignment"]["assignment_id"] == b["assignment_id"]
    assert env.client.get("/api/judgements/r1", headers=env.hdr("alice")).status_code == 404
    assert env.next("alice", pid)["assignment"]["assignment_id"] == b["assignment_id"]  # back to redo


def test_admin_creates_project_imports_and_annotators(env):
    r = env.client.post("/api/admin/projects", json={"name": "api-proj", "mode": "pairwise", "overlap": 2}, headers=env.hdr("admin"))
    assert r.status_code == 201
    pid = r.json()["id"]
    items = [it.model_dump(mode="json") for it in make_items(3)]
    r = env.client.post(f"/api/admin/projects/{pid}/items", json={"items": items}, headers=env.hdr("admin"))
    assert r.json() == {"added": 3, "skipped_existing": 0, "annotations": 0, "skipped_empty": [], "flagged_empty": 0}
    r = env.client.post(f"/api/admin/projects/{pid}/items", json={"items": items}, headers=env.hdr("admin"))
    assert r.json() == {"added": 0, "skipped_existing": 3, "annotations": 0, "skipped_empty": [], "flagged_empty": 0}
    r = env.client.post("/api/admin/annotators", json={"name": "dave"}, headers=env.hdr("admin"))
    assert r.status_code == 201 and "/login?token=ann_" in r.json()["login_url"]
    names = [a["name"] for a in env.client.get("/api/admin/annotators", headers=env.hdr("admin")).json()]
    assert names == ["alice", "bob", "carol", "dave"]


def test_openapi_schema_lists_the_api(env):
    schema = env.client.get("/openapi.json").json()
    assert "/api/assignments/{assignment_id}/judgement" in schema["paths"]
    assert "/api/admin/projects/{project_id}/stats" in schema["paths"]
    assert "SubmitBody" in schema["components"]["schemas"]


@pytest.mark.parametrize("path", ["/annotate", "/admin", "/annotate/1"])
def test_pages_need_login(env, path):
    assert env.client.get(path, follow_redirects=False).status_code == 401


def test_login_link_sets_cookie_and_pages_check_roles(env):
    r = env.client.get(f"/login?token={env.tokens['alice']}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/annotate"
    assert "httponly" in r.headers["set-cookie"].lower()
    assert env.client.get("/admin").status_code == 403
    assert env.client.get("/annotate/12345").status_code == 404
    assert env.client.get("/api/me").json()["name"] == "alice"  # the cookie works for the API
    assert env.client.get("/login?token=wrong").status_code == 401
