"""Admin statistics: pair labels, agreement wiring, gold accuracy, position/length bias, weights."""

import numpy as np
import pytest

from rlhfkit.feedback import agreement, repo
from rlhfkit.feedback.stats import pair_labels, project_stats
from rlhfkit.schema import PreferenceItem, Response
from tests.feedback.conftest import make_items


def test_pair_labels():
    assert pair_labels({"kind": "ranking", "tiers": [[2], [0, 1]]}) == {(0, 1): "tie", (0, 2): "hi", (1, 2): "hi"}
    assert pair_labels({"kind": "pairwise", "a": 2, "b": 0, "choice": "a"}) == {(0, 2): "hi"}
    assert pair_labels({"kind": "pairwise", "a": 2, "b": 0, "choice": "b"}) == {(0, 2): "lo"}
    assert pair_labels({"kind": "pairwise", "a": 1, "b": 0, "choice": "both_bad"}) == {(0, 1): "both_bad"}
    assert pair_labels({"kind": "all_bad"}) == {}


def _judge_all(env, who, pid, order_for):
    """Judge every item served to `who`, ranking by order_for(item number)."""
    n = 0
    while not (nxt := env.next(who, pid))["done"]:
        a = nxt["assignment"]
        i = int(a["prompt"].split()[1].rstrip("?"))
        body = {"id": f"{who}{n}", "judgement": {"kind": "ranking", "tiers": [[r] for r in order_for(i)]}}
        assert env.client.post(f"/api/assignments/{a['assignment_id']}/judgement", json=body, headers=env.hdr(who)).status_code == 201
        n += 1


def test_agreement_numbers_match_hand_computation(env):
    pid = env.project(items=make_items(6), overlap=3)
    alice = lambda i: [0, 1, 2] if i % 2 == 0 else [2, 1, 0]  # noqa: E731
    _judge_all(env, "alice", pid, alice)
    _judge_all(env, "bob", pid, alice)  # bob agrees with alice everywhere
    _judge_all(env, "carol", pid, lambda i: [1, 0, 2])
    st = env.client.get(f"/api/admin/projects/{pid}/stats", headers=env.hdr("admin")).json()
    assert st["progress"] == {"items": 6, "gold_items": 0, "complete": 6, "started": 0, "judgements": 18,
                              "needed": 18, "open_leases": 0, "skips": 0}
    # units (item, pair) with counts of [lo, hi, tie, both_bad], worked out by hand:
    even = [[2, 1, 0, 0], [3, 0, 0, 0], [3, 0, 0, 0]]  # pairs (0,1), (0,2), (1,2)
    odd = [[0, 3, 0, 0], [1, 2, 0, 0], [1, 2, 0, 0]]
    assert st["agreement"]["units"] == 18
    assert st["agreement"]["fleiss_kappa"] == pytest.approx(agreement.fleiss_kappa((even + odd) * 3), rel=1e-12)
    # ordinal alpha over the implied pair preferences, coded lo=0 < tie=1 < hi=2 (worked out by
    # hand: alice and bob say lo,lo,lo on even items and hi,hi,hi on odd ones; carol hi,lo,lo)
    data = np.array([[0, 0, 0, 2, 2, 2] * 3, [0, 0, 0, 2, 2, 2] * 3, [2, 0, 0] * 6], float)
    assert st["agreement"]["krippendorff_alpha_ordinal"] == pytest.approx(agreement.krippendorff_alpha(data), rel=1e-12)
    assert st["agreement"]["raw_agreement"] == pytest.approx(agreement.raw_agreement((even + odd) * 3), rel=1e-12)
    kappas = {(c["a"], c["b"]): c["kappa"] for c in st["agreement"]["cohen_kappa"]}
    assert kappas[("alice", "bob")] == pytest.approx(1.0, abs=1e-12)
    assert kappas[("alice", "carol")] < 0.5
    # weights: carol matches the (alice, bob) majority on 9 of 18 units: acc = (9+3)/(18+4);
    # alice has a majority to compare with only where bob and carol agree (9 units), all agreeing.
    w = {a["annotator"]: a for a in st["annotators"]}
    assert w["carol"]["agreement_evidence"] == 18 and w["alice"]["agreement_evidence"] == 9
    assert w["carol"]["reliability_weight"] == pytest.approx(round(2 * 12 / 22 - 1, 4))
    assert w["alice"]["reliability_weight"] == w["bob"]["reliability_weight"] == pytest.approx(round(2 * 12 / 13 - 1, 4))


def test_position_and_length_bias(env):
    # responses: index 2 is always the longest ("more more"); alice always picks the first shown
    pid = env.project(items=make_items(20), overlap=1)
    for n in range(20):
        a = env.next("alice", pid)["assignment"]
        first_shown = a["shown_order"][0]
        rest = [i for i in a["shown_order"][1:]]
        body = {"id": f"pb{n}", "judgement": {"kind": "ranking", "tiers": [[first_shown], rest]}}
        env.client.post(f"/api/assignments/{a['assignment_id']}/judgement", json=body, headers=env.hdr("alice"))
    pid2 = env.project(name="len", items=make_items(20, prefix="L"), overlap=1)
    for n in range(20):
        env.rank_submit("bob", pid2, f"lb{n}", [2, 1, 0])  # always the longest first
    a = project_stats_for(env, pid, "alice")
    assert a["first_position_best_rate"] == 1.0 and a["first_position_chance"] == pytest.approx(1 / 3)
    b = project_stats_for(env, pid2, "bob")
    assert b["longer_preferred_rate"] == 1.0
    # shown order is random, so bob's first-shown response is best about 1/3 of the time
    # (20 draws: P(rate == 0) = (2/3)^20 < 1e-3, P(rate >= 0.8) < 1e-5)
    assert 0 < b["first_position_best_rate"] < 0.8


def project_stats_for(env, pid, name):
    st = env.client.get(f"/api/admin/projects/{pid}/stats", headers=env.hdr("admin")).json()
    return next(a for a in st["annotators"] if a["annotator"] == name)


def test_gold_accuracy(env):
    gold = make_items(4, prefix="g", gold=True)  # gold answer: 0 > 1 > 2
    pid = env.project(items=make_items(4), gold_items=gold, overlap=1, gold_rate=1.0)
    for n in range(8):
        nxt = env.next("alice", pid)["assignment"]
        order = [0, 1, 2] if n % 2 == 0 else [0, 2, 1]  # second style gets 2 of 3 gold pairs right
        body = {"id": f"ga{n}", "judgement": {"kind": "ranking", "tiers": [[i] for i in order]}}
        env.client.post(f"/api/assignments/{nxt['assignment_id']}/judgement", json=body, headers=env.hdr("alice"))
    a = project_stats_for(env, pid, "alice")
    assert a["gold_judged"] == 4
    assert a["gold_accuracy"] == pytest.approx(np.mean([1, 2 / 3, 1, 2 / 3]))


def test_stats_on_empty_project(env):
    with env.db.session() as s:
        p = repo.create_project(s, "empty")
        st = project_stats(s, p)
    assert st["progress"]["items"] == 0 and st["annotators"] == []
    assert st["agreement"]["fleiss_kappa"] is None


def test_admin_page_renders_stats(env):
    pid = env.project(items=[PreferenceItem(id="x", prompt="<b>p</b>", responses=[Response(text="a"), Response(text="b")])], overlap=1)
    env.rank_submit("alice", pid, "j", [1, 0])
    r = env.client.get("/admin", headers=env.hdr("admin"))
    assert r.status_code == 200 and "alice" in r.text and "Fleiss" in r.text
    assert "default-src 'self'" in r.headers["content-security-policy"]
