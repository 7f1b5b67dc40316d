"""Best-of-N sweep from a fixed sample pool: the order-statistics estimator against brute-force
enumeration of every N-subset, a hand-computed case, the sweep's points and the gold-turn test."""

import itertools
import math

import numpy as np
import pytest

from rlhfkit.eval.bon_sweep import best_of_n_weights, bon_sweep, expected_best_of_n, gold_turn
from rlhfkit.eval.overoptimization import best_of_n_for_kl, best_of_n_kl


def brute_force(proxy: list[float], gold: list[float], n: int) -> float:
    """Mean gold of the proxy-best over all C(M, N) subsets; the best is the first of equal maxima
    (``max`` over indices in increasing order), the rule of rollout.best_of_n."""
    subsets = list(itertools.combinations(range(len(proxy)), n))
    return sum(gold[max(s, key=lambda i: proxy[i])] for s in subsets) / len(subsets)


def test_hand_computed_best_of_two():
    # proxy ascending order is samples 0, 3, 2, 1 -> gold in that order 1, 4, 3, 2; N = 2 weights
    # C(i-1, 1) / C(4, 2) = 0, 1/6, 2/6, 3/6 -> (4 + 6 + 6) / 6 = 16/6. By hand over the 6 pairs:
    # bests 1, 2, 3, 1, 1, 2 -> gold 2 + 3 + 4 + 2 + 2 + 3 = 16.
    got = expected_best_of_n([[0.1, 0.4, 0.3, 0.2]], [[1.0, 2.0, 3.0, 4.0]], [1, 2, 4])
    np.testing.assert_allclose(got, [[2.5, 16 / 6, 2.0]], rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_brute_force_enumeration_with_ties(seed):
    rng = np.random.default_rng(seed)
    m = 7
    proxy = rng.integers(0, 4, size=(3, m)).astype(float)  # few values: many ties
    gold = rng.normal(size=(3, m))
    ns = list(range(1, m + 1))
    got = expected_best_of_n(proxy, gold, ns)
    want = [[brute_force(list(p), list(g), n) for n in ns] for p, g in zip(proxy, gold)]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_weights_sum_to_one_and_the_ends_are_the_mean_and_the_max():
    for m, n in ((5, 1), (5, 3), (32, 8), (32, 32)):
        assert best_of_n_weights(m, n).sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(best_of_n_weights(4, 1), [0.25] * 4, rtol=0, atol=1e-15)
    np.testing.assert_allclose(best_of_n_weights(4, 4), [0, 0, 0, 1], rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="1 <= N <= the 4 samples"):
        best_of_n_weights(4, 5)
    with pytest.raises(ValueError, match="equal"):
        expected_best_of_n([[1.0, 2.0]], [[1.0, 2.0, 3.0]], [1])


def test_sweep_points_are_gains_over_n1_with_kl_and_prompt_cis():
    rng = np.random.default_rng(0)
    proxy = rng.normal(size=(20, 16))
    gold = proxy + rng.normal(size=(20, 16))
    pts = bon_sweep(proxy, gold, [2, 4, 16], n_boot=500)
    assert [p["n"] for p in pts] == [1, 2, 4, 16]  # N = 1 is always added: it is the zero point
    assert pts[0]["proxy"] == 0.0 and pts[0]["gold"] == 0.0 and pts[0]["gold_ci95"] == [0.0, 0.0]
    assert [p["kl"] for p in pts] == [best_of_n_kl(n) for n in (1, 2, 4, 16)]
    # the expected best of N under the proxy never falls as N grows (a larger subset's max is larger)
    assert all(a["proxy"] < b["proxy"] for a, b in zip(pts, pts[1:]))
    # N = 16 = M: the proxy-best of every prompt, exactly
    best = proxy.max(axis=1).mean() - proxy.mean()
    assert pts[-1]["proxy"] == pytest.approx(best, abs=1e-12)
    assert pts[-1]["proxy_abs"] == pytest.approx(proxy.max(axis=1).mean(), abs=1e-12)
    assert all(p["gold_ci95"][0] <= p["gold"] <= p["gold_ci95"][1] for p in pts)


def test_gold_turn_is_found_only_when_the_gold_falls_past_its_peak():
    rng = np.random.default_rng(1)
    proxy = rng.uniform(0, 1, size=(40, 32))
    ns = [1, 2, 4, 8, 16, 32]
    # gold peaks where the proxy is 0.8: the proxy-best of 32 (proxy ~ 0.97) is past it
    turn = gold_turn(proxy, -((proxy - 0.8) ** 2), ns, n_boot=500)
    assert turn["interior"] and turn["significant_drop"] and 1 < turn["n_peak"] < 32 and turn["drop_ci95"][0] > 0
    assert turn["gold_peak"] > turn["gold_at_n_max"]
    # gold = proxy: the peak is at N_max, no turn
    flat = gold_turn(proxy, proxy, ns, n_boot=500)
    assert flat["n_peak"] == 32 and not flat["interior"] and flat["drop"] == 0.0
    # gold = -proxy: best-of-N hurts from the first step; a significant drop but no interior peak
    falls = gold_turn(proxy, -proxy, ns, n_boot=500)
    assert falls["n_peak"] == 1 and falls["significant_drop"] and not falls["interior"]
    # gold unrelated to the proxy: whatever N "peaks", the fall is within the noise
    noise = gold_turn(proxy, rng.normal(size=proxy.shape), ns, n_boot=500)
    assert not noise["interior"]


def test_best_of_n_for_kl_inverts_the_kl():
    for n in (1, 2, 7.5, 32, 1000):
        assert best_of_n_for_kl(math.log(n) - (n - 1) / n) == pytest.approx(n, rel=1e-9)
    with pytest.raises(ValueError, match="kl must be in"):
        best_of_n_for_kl(-0.1)
