"""Project agreement (issue 14, section 2) checked against krippendorff, statsmodels and scipy.

There is no public multi-annotator preference data on this machine, so the project data are
noisy annotators judging items through the API (4 annotators, every item judged by all, ties
and both-bad included); the library functions are also checked on the published examples in
test_agreement.py (Krippendorff 2011, Fleiss 1971). Every expected number here comes from an
independent implementation: the krippendorff package, statsmodels, scipy, or brute force.
"""

from itertools import combinations

import numpy as np
import pytest

from rlhfkit.feedback import agreement
from rlhfkit.schema import PreferenceItem, Response
from tests.feedback.conftest import make_items

kd = pytest.importorskip("krippendorff", reason="krippendorff (test extra) for the parity check")
sm = pytest.importorskip("statsmodels.stats.inter_rater", reason="statsmodels (test extra) for the parity check")
scipy_stats = pytest.importorskip("scipy.stats")

NAMES = ("alice", "bob", "carol", "dave")


def _annotators(env):
    env.add_annotator("dave")


def _submit_all(env, pid, judge):
    """Every annotator judges every item; ``judge(who, item_number, shown)`` -> judgement dict."""
    for who in NAMES:
        n = 0
        while True:
            nxt = env.next(who, pid)
            if nxt["done"]:
                break
            a = nxt["assignment"]
            i = int(a["prompt"].split()[1].rstrip("?"))
            body = {"id": f"{who}{n}", "judgement": judge(who, i, [r["index"] for r in a["responses"]])}
            r = env.client.post(f"/api/assignments/{a['assignment_id']}/judgement", json=body, headers=env.hdr(who))
            assert r.status_code == 201, r.text
            n += 1


def _stats(env, pid):
    return env.client.get(f"/api/admin/projects/{pid}/stats", headers=env.hdr("admin")).json()["agreement"]


def _noisy_ranking(rng, truth: list[int]) -> list[list[int]]:
    """The true order with a random swap and a random tie now and then (tiers, best first)."""
    order = list(truth)
    if rng.random() < 0.4:
        k = int(rng.integers(0, len(order) - 1))
        order[k], order[k + 1] = order[k + 1], order[k]
    tiers = [[order[0]]]
    for r in order[1:]:
        if rng.random() < 0.2:
            tiers[-1].append(r)
        else:
            tiers.append([r])
    return tiers


def test_ranking_project_agreement_matches_reference_packages(env):
    _annotators(env)
    pid = env.project(items=make_items(15, k=4), overlap=4)
    rng = np.random.default_rng(7)
    truth = {i: [int(r) for r in rng.permutation(4)] for i in range(15)}
    given = {}

    def judge(who, i, _shown):
        given[(who, i)] = _noisy_ranking(rng, truth[i])
        return {"kind": "ranking", "tiers": given[(who, i)]}

    _submit_all(env, pid, judge)
    got = _stats(env, pid)

    # independent encoding: unit (item, i<j), value = which one is preferred
    tier = {key: {r: t for t, tr in enumerate(tiers) for r in tr} for key, tiers in given.items()}
    units = [(i, a, b) for i in range(15) for a, b in combinations(range(4), 2)]

    def code(who, unit, scale):
        i, a, b = unit
        ta, tb = tier[(who, i)][a], tier[(who, i)][b]
        return scale[0] if ta < tb else scale[2] if ta > tb else scale[1]

    nominal = np.array([[code(w, u, (0, 2, 1)) for u in units] for w in NAMES], float)  # lo, tie, hi
    ordinal = np.array([[code(w, u, (0, 1, 2)) for u in units] for w in NAMES], float)
    assert got["units"] == len(units) == 90
    assert got["krippendorff_alpha_nominal"] == pytest.approx(
        kd.alpha(reliability_data=nominal, level_of_measurement="nominal"), rel=1e-9)
    assert got["krippendorff_alpha_ordinal"] == pytest.approx(
        kd.alpha(reliability_data=ordinal, level_of_measurement="ordinal"), rel=1e-9)
    table, _cats = sm.aggregate_raters(nominal.T)  # units x categories
    assert got["fleiss_kappa"] == pytest.approx(sm.fleiss_kappa(table, method="fleiss"), rel=1e-9)
    same = [np.mean([nominal[x, u] == nominal[y, u] for x, y in combinations(range(4), 2)]) for u in range(90)]
    assert got["raw_agreement"] == pytest.approx(np.mean(same), rel=1e-12)
    kappas = {(c["a"], c["b"]): c["kappa"] for c in got["cohen_kappa"]}
    for x, y in combinations(range(4), 2):
        t = np.zeros((3, 3))
        for u in range(90):
            t[int(nominal[x, u]), int(nominal[y, u])] += 1
        a, b = sorted((NAMES[x], NAMES[y]))
        assert kappas[(a, b)] == pytest.approx(sm.cohens_kappa(t).kappa, rel=1e-9)
    assert got["cohen_kappa_mean"] == pytest.approx(np.mean(list(kappas.values())), rel=1e-12)
    taus = []
    for x, y in combinations(NAMES, 2):
        per_item = [scipy_stats.kendalltau([tier[(x, i)][r] for r in range(4)], [tier[(y, i)][r] for r in range(4)],
                                           variant="b").statistic for i in range(15)]
        taus.append(np.nanmean(per_item))
    assert got["kendall_tau_b"] == pytest.approx(np.mean(taus), rel=1e-9)
    assert 0.2 < got["kendall_tau_b"] < 0.95 and 0.2 < got["krippendorff_alpha_ordinal"] < 0.95  # not degenerate


def test_pairwise_project_reports_alpha_and_raw_agreement(env):
    _annotators(env)
    pid = env.project(items=make_items(20, k=2), overlap=4, mode="pairwise")
    rng = np.random.default_rng(3)
    better = {i: int(rng.integers(0, 2)) for i in range(20)}  # the truly better original index
    label = {}

    def judge(who, i, shown):
        x = rng.random()
        choice = "tie" if x < 0.15 else "both_bad" if x < 0.25 else None
        if choice is None:
            winner = better[i] if x < 0.8 else 1 - better[i]
            choice = "a" if shown[0] == winner else "b"
        label[(who, i)] = {"tie": "tie", "both_bad": "both_bad"}.get(choice) or (
            "lo" if (shown[0] if choice == "a" else shown[1]) == 0 else "hi")
        return {"kind": "pairwise", "a": shown[0], "b": shown[1], "choice": choice}

    _submit_all(env, pid, judge)
    got = _stats(env, pid)
    nom = {"lo": 0, "hi": 1, "tie": 2, "both_bad": 3}
    ordc = {"lo": 0, "tie": 1, "both_bad": 1, "hi": 2}  # A better > no preference > B better
    nominal = np.array([[nom[label[(w, i)]] for i in range(20)] for w in NAMES], float)
    ordinal = np.array([[ordc[label[(w, i)]] for i in range(20)] for w in NAMES], float)
    assert got["krippendorff_alpha_nominal"] == pytest.approx(
        kd.alpha(reliability_data=nominal, level_of_measurement="nominal"), rel=1e-9)
    assert got["krippendorff_alpha_ordinal"] == pytest.approx(
        kd.alpha(reliability_data=ordinal, level_of_measurement="ordinal"), rel=1e-9)
    table, _ = sm.aggregate_raters(nominal.T)
    assert got["fleiss_kappa"] == pytest.approx(sm.fleiss_kappa(table, method="fleiss"), rel=1e-9)
    same = [np.mean([nominal[x, i] == nominal[y, i] for x, y in combinations(range(4), 2)]) for i in range(20)]
    assert got["raw_agreement"] == pytest.approx(np.mean(same), rel=1e-12)
    assert "kendall_tau_b" not in got  # one pair per item: a rank correlation says nothing more


def test_everyone_ranking_a_response_last_is_agreement(env):
    """The issue's case: all put response 2 last; alice ties 0 and 1 above it, bob orders them.
    Over implied pair preferences the two agree on (0,2) and (1,2) and differ only on (0,1);
    alpha on tier numbers counted response 2 (tier 1 for alice, tier 2 for bob) as disagreement."""
    pid = env.project(items=[PreferenceItem(id=f"q{n}", prompt=f"question {n}?", responses=[
        Response(text="x"), Response(text="y"), Response(text="z")]) for n in range(4)], overlap=2)
    for who, tiers in (("alice", [[0, 1], [2]]), ("bob", [[0], [1], [2]])):
        for n in range(4):
            a = env.next(who, pid)["assignment"]
            env.client.post(f"/api/assignments/{a['assignment_id']}/judgement",
                            json={"id": f"{who}{n}", "judgement": {"kind": "ranking", "tiers": tiers}},
                            headers=env.hdr(who))
    got = _stats(env, pid)
    assert got["raw_agreement"] == pytest.approx(2 / 3, abs=1e-12)  # 2 of the 3 pair units agree
    ordinal = np.array([[1, 0, 0] * 4, [0, 0, 0] * 4], float)  # (0,1) tie vs lo; (0,2), (1,2) lo
    assert got["krippendorff_alpha_ordinal"] == pytest.approx(
        kd.alpha(reliability_data=ordinal, level_of_measurement="ordinal"), rel=1e-9)
    tau = scipy_stats.kendalltau([0, 0, 1], [0, 1, 2], variant="b").statistic
    assert got["kendall_tau_b"] == pytest.approx(tau, rel=1e-12) and tau > 0.8


def test_raw_agreement_and_kendall_tau_b_functions():
    assert agreement.raw_agreement([[3, 0], [2, 1], [1, 0]]) == pytest.approx((1 + 1 / 3) / 2)  # 1-rater unit dropped
    assert agreement.kendall_tau_b([0, 1, 2, 3], [3, 2, 1, 0]) == -1.0
    assert np.isnan(agreement.kendall_tau_b([0, 0, 0], [0, 1, 2]))
    rng = np.random.default_rng(0)
    for _ in range(20):
        x, y = rng.integers(0, 3, 6), rng.integers(0, 3, 6)
        ref = scipy_stats.kendalltau(x, y, variant="b").statistic
        ours = agreement.kendall_tau_b(x, y)
        assert (np.isnan(ours) and np.isnan(ref)) or ours == pytest.approx(ref, rel=1e-12, abs=1e-15)
