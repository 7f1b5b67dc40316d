"""The same storage on a real PostgreSQL: a throwaway cluster started for this test module."""

import pytest

from rlhfkit.feedback import repo
from rlhfkit.feedback.db import Database
from rlhfkit.feedback.export import export_lines
from rlhfkit.feedback.stats import project_stats
from rlhfkit.feedback.throwaway_postgres import ThrowawayPostgres, unavailable_reason
from tests.feedback.conftest import Env, make_items

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=unavailable_reason() or "")


@pytest.fixture(scope="module")
def pg_url():
    with ThrowawayPostgres(fsync=False) as pg:  # fsync off: these tests check SQL, not power cuts
        yield pg.create_database("feedback")


def test_full_flow_on_postgres(pg_url):
    db = Database(pg_url)  # migrations applied on open
    Database(pg_url).close()  # and re-opening is a no-op migration
    env = Env(db)
    for name in ("alice", "bob"):
        env.add_annotator(name)
    pid = env.project(items=make_items(3), gold_items=make_items(1, prefix="g", gold=True), overlap=2)
    for who in ("alice", "bob"):
        for n in range(3):
            env.rank_submit(who, pid, f"{who}-{n}", [1, 0, 2])
    # idempotent retry and the auth paths behave the same on PostgreSQL
    assert env.next("alice", pid)["done"] is True  # all 3 regular items judged, gold rate 0
    r = env.client.get("/api/judgements/alice-0", headers=env.hdr("alice"))
    assert r.status_code == 200
    retry = {"id": "alice-0", "judgement": r.json()["judgement"]}
    again = env.client.post(f"/api/assignments/{r.json()['assignment_id']}/judgement", json=retry, headers=env.hdr("alice"))
    assert again.status_code == 200 and again.json()["created"] is False
    assert env.client.get("/api/judgements/alice-0", headers=env.hdr("bob")).status_code == 404
    with db.read() as s:
        p = repo.get_project(s, pid)
        st = project_stats(s, p)
        lines, _ = export_lines(s, p, "trl-pairs")
    assert st["progress"]["judgements"] >= 6
    assert st["agreement"]["fleiss_kappa"] is not None
    assert len(lines) >= 18
    env.client.close()
    db.close()


def test_only_non_durable_sessions_commit_asynchronously(pg_url):
    from sqlalchemy import text

    db = Database(pg_url)
    with db.session(durable=False) as s:  # a lease: SET LOCAL, for this transaction only
        assert s.execute(text("show synchronous_commit")).scalar() == "off"
    with db.session() as s:
        assert s.execute(text("show synchronous_commit")).scalar() == "on"
    db.close()


def test_a_lease_in_flight_does_not_block_submissions(pg_url):
    """next_assignment locks the project row against other leases only: a submission's foreign-key
    check (KEY SHARE on the same row) goes through while a lease transaction is still open."""
    from sqlalchemy import text

    db = Database(pg_url)
    with db.session() as s:
        p = repo.create_project(s, "nokey", overlap=2)
        repo.import_items(s, p, [(it, "t") for it in make_items(2, prefix="nokey")])
        x, _ = repo.add_annotator(s, "nokey-x")
        y, _ = repo.add_annotator(s, "nokey-y")
        y_asg = repo.next_assignment(s, p, y).id
    with db.session(durable=False) as lease:  # x's lease holds the project row lock until the end
        assert not isinstance(repo.next_assignment(lease, repo.get_project(lease, p.id), x), repo.NoWork)
        with db.session() as s:
            s.execute(text("SET LOCAL lock_timeout = '2s'"))  # blocked: LockNotAvailable, not a hang
            _j, created = repo.submit(s, y, y_asg, "nokey-1", {"kind": "ranking", "tiers": [[0], [1], [2]]})
        assert created
    db.close()


def test_concurrent_retries_of_one_submission_store_it_once(pg_url):
    import threading

    from sqlalchemy import func, select
    from sqlalchemy.exc import IntegrityError

    from rlhfkit.feedback.models import Judgement

    db = Database(pg_url)
    with db.session() as s:
        p = repo.create_project(s, "race", overlap=1)
        repo.import_items(s, p, [(it, "t") for it in make_items(1, prefix="race")])
        ann, _ = repo.add_annotator(s, "racer")
        aid = repo.next_assignment(s, p, ann).id
    results, barrier = [], threading.Barrier(8)

    def retry():
        barrier.wait()
        for _ in range(3):  # as the API does: a lost insert race is retried
            try:
                with db.session() as s:
                    _j, created = repo.submit(s, ann, aid, "same-id", {"kind": "ranking", "tiers": [[0], [1], [2]]})
                results.append(created)
                return
            except IntegrityError:
                continue
        results.append("failed")

    threads = [threading.Thread(target=retry) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results, key=str) == [False] * 7 + [True]
    with db.read() as s:
        assert s.scalar(select(func.count(Judgement.id)).where(Judgement.client_id == "same-id")) == 1
    db.close()


def test_hostile_inputs_give_4xx_on_postgres(pg_url):
    db = Database(pg_url)
    env = Env(db)
    with db.session() as s:  # the module's database already has an admin token (not shown again)
        env.admin = repo.rotate_admin_token(s)
    env.add_annotator("mallory")
    pid = env.project(name="hostile", items=make_items(2, prefix="h"), overlap=1)
    a = env.next("mallory", pid)["assignment"]
    item = make_items(1, prefix="n")[0].model_dump(mode="json")
    cases = [
        ("POST", f"/api/assignments/{a['assignment_id']}/judgement", "mallory",
         {"id": "n1", "judgement": {"kind": "ranking", "tiers": [[0], [1], [2]]}, "critique": "a\x00b"}),
        ("POST", f"/api/assignments/{a['assignment_id']}/skip", "mallory", {"reason": "\x00"}),
        ("POST", f"/api/assignments/{10**20}/skip", "mallory", {"reason": "x"}),
        ("GET", f"/api/projects/{2**40}/next", "mallory", None),
        ("GET", "/api/judgements/a%00b", "mallory", None),
        ("DELETE", "/api/judgements/" + "x" * 65, "mallory", None),
        ("POST", f"/api/admin/projects/{pid}/items", "admin", {"items": [{**item, "id": "i" * 300}]}),
        ("POST", f"/api/admin/projects/{pid}/items", "admin", {"items": [{**item, "prompt": "p\x00"}]}),
        ("POST", f"/api/admin/projects/{pid}/items", "admin", {"items": [{**item, "id": "a\x00"}]}),
        ("POST", "/api/admin/annotators", "admin", {"name": "x\x00"}),
        ("POST", "/api/admin/projects", "admin", {"name": "p" * 201}),
    ]
    for method, url, who, body in cases:
        r = env.client.request(method, url, json=body, headers=env.hdr(who))
        assert 400 <= r.status_code < 500, (url, body, r.status_code, r.text)
        # refused for its content, not for a missing or wrong token
        assert r.status_code not in (401, 403), (url, body, r.status_code, r.text)
    env.client.close()
    db.close()


def test_team_review_ratings_and_arena_on_postgres(pg_url):
    """The team features' SQL (boolean filters, membership EXISTS, deletes, adjudications) on PostgreSQL."""
    from rlhfkit.schema import PreferenceItem, Provenance, Response

    db = Database(pg_url)
    env = Env(db)
    for name in ("tara", "uma"):
        env.add_annotator(name)
    with db.session() as s:
        env.tokens["rex"] = repo.add_annotator(s, "rex", role="reviewer")[1]
        env.admin = repo.rotate_admin_token(s)  # the module's database already has one (not shown again)
    pid = env.project(name="team-pg", items=make_items(2, prefix="t"), overlap=2)
    admin = env.hdr("admin")
    assert env.client.post(f"/api/admin/projects/{pid}/members", json={"add": ["tara", "rex"]}, headers=admin).status_code == 200
    assert env.client.get(f"/api/projects/{pid}/next", headers=env.hdr("uma")).status_code == 404
    env.rank_submit("tara", pid, "t1", [0, 1, 2])
    progress = env.client.get(f"/api/projects/{pid}/progress", headers=env.hdr("tara")).json()
    assert progress["done"] == 1 and progress["remaining"] == 1
    env.rank_submit("tara", pid, "t2", [0, 1, 2])
    env.rank_submit("rex", pid, "r1", [2, 1, 0])  # the reverse order on both items
    env.rank_submit("rex", pid, "r2", [2, 1, 0])
    queue = env.client.get(f"/api/review/projects/{pid}/queue", headers=env.hdr("rex")).json()
    assert len(queue) == 2 and [q["disagreement"] for q in queue] == [1.0, 1.0]
    r = env.client.post(f"/api/review/items/{queue[0]['item_id']}/adjudication", headers=env.hdr("rex"),
                        json={"judgement": {"kind": "ranking", "tiers": [[0], [1], [2]]}})
    assert r.status_code == 200
    names = lambda who: [p["name"] for p in env.client.get("/api/me", headers=env.hdr(who)).json()["projects"]]  # noqa: E731
    assert "team-pg" in names("tara") and "team-pg" not in names("uma")
    assert env.client.patch(f"/api/admin/projects/{pid}", json={"archived": True}, headers=admin).status_code == 200
    assert "team-pg" not in [p["name"] for p in env.client.get("/api/me", headers=env.hdr("tara")).json()["projects"]]
    rating = env.project(name="rate-pg", items=make_items(1, prefix="rt"), overlap=1, mode="rating")
    a = env.next("uma", rating)["assignment"]
    body = {"id": "u1", "judgement": {"kind": "per_response", "judgements": [
        {"kind": "rating", "response": i, "score": 4 + i} for i in range(3)]}}
    assert env.client.post(f"/api/assignments/{a['assignment_id']}/judgement", json=body,
                           headers=env.hdr("uma")).status_code == 201
    arena = env.project(name="arena-pg", mode="arena", overlap=1, items=[PreferenceItem(
        id="a1", prompt="q", responses=[Response(text="x", provenance=Provenance(model="m1")),
                                        Response(text="y", provenance=Provenance(model="m2"))])])
    a = env.next("uma", arena)["assignment"]
    j = {"kind": "pairwise", "a": a["responses"][0]["index"], "b": a["responses"][1]["index"], "choice": "tie"}
    assert env.client.post(f"/api/assignments/{a['assignment_id']}/judgement", json={"id": "v1", "judgement": j},
                           headers=env.hdr("uma")).status_code == 201
    board = env.client.get(f"/api/admin/projects/{arena}/leaderboard?rounds=5", headers=admin).json()
    assert board["battles"] == 1 and abs(board["models"][0]["score"] - 1000) < 1e-6
    hostile = [  # NUL in the new text fields: a 422 on PostgreSQL, never a driver error
        ("PATCH", f"/api/admin/projects/{pid}", "admin", {"instructions": "a\x00"}),
        ("PATCH", f"/api/admin/projects/{pid}", "admin", {"examples": [{"prompt": "q\x00", "responses": ["a"], "answer": "1"}]}),
        ("POST", f"/api/admin/projects/{pid}/members", "admin", {"add": ["x\x00"]}),
        ("POST", f"/api/review/items/{queue[0]['item_id']}/adjudication", "rex",
         {"judgement": {"kind": "all_bad"}, "note": "\x00"}),
        ("POST", f"/api/assignments/{a['assignment_id']}/judgement", "uma",
         {"id": "v2", "judgement": j, "annotator_config": {"k": "\x00"}}),
    ]
    for method, url, who, body in hostile:
        r = env.client.request(method, url, json=body, headers=admin if who == "admin" else env.hdr(who))
        assert 400 <= r.status_code < 500, (url, body, r.status_code, r.text)
    r = env.client.delete(f"/api/admin/projects/{pid}?confirm=team-pg", headers=admin)
    assert r.json() == {"deleted": "team-pg", "items": 2, "judgements": 4}
    env.client.close()
    db.close()


def test_several_server_processes_share_one_postgres(pg_url, tmp_path):
    """`rlhfkit serve --workers 2`: both processes serve the API over the same database, and a
    whole-group kill stops them all (the load benchmark's kill -9 rounds rely on that)."""
    import os

    import httpx

    from rlhfkit.feedback.loadtest import Server, free_port, prepare

    pid, tokens = prepare(pg_url, 1, 4, overlap=1)
    server = Server(pg_url, free_port(), log=tmp_path / "server.log", workers=2)
    server.start()
    try:
        workers = [int(p) for p in os.listdir("/proc") if p.isdigit() and _ppid(int(p)) == server.proc.pid]
        assert len([w for w in workers if "spawn_main" in _cmdline(w)]) == 2
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", headers={"Authorization": f"Bearer {tokens[0]}"}) as c:
            for n in range(4):
                a = c.get(f"/api/projects/{pid}/next").json()["assignment"]
                r = c.post(f"/api/assignments/{a['assignment_id']}/judgement",
                           json={"id": f"w{n}", "judgement": {"kind": "ranking", "tiers": [[0], [1], [2]]}})
                assert r.status_code == 201, r.text
            assert c.get(f"/api/projects/{pid}/next").json()["done"] is True
        server.kill()
        assert all(not os.path.exists(f"/proc/{w}") or _ppid(w) != server.proc.pid for w in workers)
    finally:
        server.stop()


def _ppid(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except OSError:
        return -1


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline") as f:
            return f.read().replace("\0", " ")
    except OSError:
        return ""
