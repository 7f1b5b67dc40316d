"""The work model: overlap, never twice, leases, gold rate, daily cap, shown order, ranker order."""

import random
from datetime import timedelta

from sqlalchemy import select

from rlhfkit.feedback import repo
from rlhfkit.feedback.models import Annotator, Assignment, Judgement, Project
from rlhfkit.commands.feedback import load_ranker
from rlhfkit.feedback.ranker import score_project
from tests.feedback.conftest import make_items

RANK3 = {"kind": "ranking", "tiers": [[0], [1], [2]]}


def _ctx(env, name):
    with env.db.read() as s:
        return s.scalar(select(Annotator).where(Annotator.name == name))


def _project(env, pid):
    with env.db.read() as s:
        return s.get(Project, pid)


def test_overlap_distinct_annotators_and_never_twice(env):
    for name in ("dave", "erin"):
        env.add_annotator(name)
    pid = env.project(items=make_items(4), overlap=3)
    seen = {}
    for name in ("alice", "bob", "carol", "dave", "erin"):
        seen[name] = []
        while True:
            nxt = env.next(name, pid)
            if nxt["done"]:
                break
            a = nxt["assignment"]
            seen[name].append(a["prompt"])
            body = {"id": f"{name}-{len(seen[name])}", "judgement": RANK3}
            env.client.post(f"/api/assignments/{a['assignment_id']}/judgement", json=body, headers=env.hdr(name))
    assert all(len(v) == len(set(v)) for v in seen.values())  # never the same item twice
    counts = {}
    for v in seen.values():
        for p in v:
            counts[p] = counts.get(p, 0) + 1
    assert counts == {f"question {i}?": 3 for i in range(4)}  # exactly overlap judgements per item
    assert [len(seen[n]) for n in ("alice", "bob", "carol", "dave", "erin")] == [4, 4, 4, 0, 0]


def test_leases_hold_items_until_they_expire(env):
    pid = env.project(items=make_items(1), overlap=1, lease_seconds=60)
    p = _project(env, pid)
    now = repo.utcnow()
    alice, bob = _ctx(env, "alice"), _ctx(env, "bob")
    with env.db.session() as s:
        got = repo.next_assignment(s, p, alice, now=now)
        assert isinstance(got, Assignment)
    with env.db.session() as s:  # alice holds the lease: bob gets nothing
        assert repo.next_assignment(s, p, bob, now=now + timedelta(seconds=59)).reason == "done"
    with env.db.session() as s:  # lease expired: the item goes to bob
        b = repo.next_assignment(s, p, bob, now=now + timedelta(seconds=61))
        assert isinstance(b, Assignment) and b.item_id == got.item_id
    with env.db.session() as s:  # alice comes back after bob took it: her stale lease is closed
        assert repo.next_assignment(s, p, alice, now=now + timedelta(seconds=62)).reason == "done"
        assert s.get(Assignment, got.id).status == "expired"


def test_open_assignment_is_resumed_not_duplicated(env):
    pid = env.project(items=make_items(3), overlap=1)
    first = env.next("alice", pid)["assignment"]
    again = env.next("alice", pid)["assignment"]
    assert again["assignment_id"] == first["assignment_id"] and again["shown_order"] == first["shown_order"]


def test_gold_items_are_mixed_in_at_the_rate(env):
    gold = make_items(30, prefix="gold", gold=True)
    pid = env.project(items=make_items(200), gold_items=gold, overlap=1, gold_rate=0.25)
    p = _project(env, pid)
    alice = _ctx(env, "alice")
    rng = random.Random(0)
    n_gold = 0
    for n in range(60):
        with env.db.session() as s:
            a = repo.next_assignment(s, p, alice, rng=rng)
            repo.submit(s, alice, a.id, f"g{n}", RANK3)
            n_gold += s.query(Judgement).filter_by(client_id=f"g{n}").one().is_gold
    assert 8 <= n_gold <= 24  # Binomial(60, 0.25): mean 15, sd 3.4 (seeded rng: deterministic)
    pid0 = env.project(name="nogold", items=make_items(20, prefix="x"), gold_items=make_items(5, prefix="g", gold=True), overlap=1)
    for n in range(20):
        env.rank_submit("bob", pid0, f"b{n}")
    with env.db.session() as s:
        assert not any(j.is_gold for j in s.scalars(select(Judgement).where(Judgement.project_id == pid0)))


def test_gold_items_do_not_use_up_overlap_and_stop_with_regular_work(env):
    pid = env.project(items=make_items(1), gold_items=make_items(3, prefix="g", gold=True), overlap=1, gold_rate=1.0)
    p = _project(env, pid)
    alice = _ctx(env, "alice")
    gold_flags = []
    for n in range(4):
        with env.db.session() as s:
            a = repo.next_assignment(s, p, alice)
            j, _ = repo.submit(s, alice, a.id, f"alice-{n}", RANK3)
            gold_flags.append(j.is_gold)
    assert gold_flags == [True, True, True, False]  # rate 1.0: gold first, then the regular item
    assert env.next("alice", pid)["done"]
    assert env.next("bob", pid)["done"]  # overlap used up; gold alone is never served


def test_daily_cap(env):
    pid = env.project(items=make_items(5), overlap=1, daily_cap=2)
    env.rank_submit("alice", pid, "d1")
    env.rank_submit("alice", pid, "d2")
    nxt = env.next("alice", pid)
    assert nxt == {"done": True, "reason": "daily_cap", "progress": {"judged": 2, "skipped": 0, "today": 2, "daily_cap": 2}}
    assert env.next("bob", pid)["done"] is False  # the cap is per annotator


def test_shown_order_is_random_per_annotator_and_stored(env):
    pid = env.project(items=make_items(25, k=4), overlap=2)
    orders = []
    for n in range(25):
        out = env.rank_submit("alice", pid, f"o{n}")
        orders.append(tuple(out["shown_order"]))
    assert len(set(orders)) > 8  # 24 permutations (about 15 distinct expected in 25 draws)
    assert all(sorted(o) == [0, 1, 2, 3] for o in orders)
    with env.db.session() as s:
        for j in s.scalars(select(Judgement)):
            assert j.shown_order == s.get(Assignment, j.assignment_id).shown_order


def test_items_served_by_stored_disagreement(env):
    def fake_ensemble(items):  # disagreement = the item number, so question 9 is the most disputed
        return [float(it.id[2:]) for it in items]

    pid = env.project(items=make_items(10), overlap=1)
    assert score_project(env.db, "p", fake_ensemble) == 10  # the feedback layer takes a built ranker
    assert _project(env, pid).order_by == "disagreement"
    served = []
    for n in range(10):
        out = env.next("alice", pid)
        served.append(out["assignment"]["prompt"])
        env.client.post(f"/api/assignments/{out['assignment']['assignment_id']}/judgement",
                        json={"id": f"r{n}", "judgement": RANK3}, headers=env.hdr("alice"))
    assert served == [f"question {i}?" for i in range(9, -1, -1)]


def test_ranker_file_spec_builds_the_callable(tmp_path):
    ranker_file = tmp_path / "fake_ranker.py"
    ranker_file.write_text("def rank(items):\n    return [float(it.id[2:]) for it in items]\n")
    assert load_ranker(f"{ranker_file}:rank")(make_items(3)) == [0.0, 1.0, 2.0]


def test_ranker_spec_errors_are_clear(tmp_path):
    import pytest

    from rlhfkit.feedback.ranker import RankerError

    for spec, words in [("nomodule_xyz:f", "cannot import"), ("plainname", "expected a directory"),
                        (str(tmp_path), "no ranker.py")]:
        with pytest.raises(RankerError, match=words):
            load_ranker(spec)
