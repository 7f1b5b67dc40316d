"""Win rate, bootstrap CI and the AlpacaEval-2-style length-controlled win rate."""

import math

import numpy as np
import pytest

from rlhfkit.eval.winrate import (
    bootstrap_ci,
    length_controlled_win_rate,
    win_outcomes,
    win_rate,
    win_rate_from_outcomes,
)


def test_win_rate_closed_form_with_ties():
    # outcomes: 3>1 win, 1=1 tie, 2<5 loss, 4>0 win -> (1 + 0.5 + 0 + 1) / 4 = 0.625
    wr = win_rate([3, 1, 2, 4], [1, 1, 5, 0], n_boot=500)
    assert (wr.rate, wr.n, wr.wins, wr.ties, wr.losses) == (0.625, 4, 2, 1, 1)
    assert wr.ci_low <= wr.rate <= wr.ci_high
    # a tolerance turns near-equal scores into ties
    assert list(win_outcomes([1.0, 2.0], [1.05, 1.0], tie_tol=0.1)) == [0.5, 1.0]


def test_bootstrap_ci_closed_forms():
    assert bootstrap_ci([0.7] * 9) == (0.7, 0.7)
    # two values: the resampled mean is 0, 1/2, 1 with probabilities 1/4, 1/2, 1/4
    lo, hi = bootstrap_ci([0.0, 1.0], n_boot=4000, seed=1)
    assert (lo, hi) == (0.0, 1.0)
    lo, hi = bootstrap_ci([0.0, 1.0], n_boot=4000, seed=1, level=0.4)  # 30% and 70% quantiles
    assert (lo, hi) == (0.5, 0.5)


def test_bootstrap_ci_matches_the_normal_approximation():
    y = np.array([1.0] * 280 + [0.0] * 120)  # p = 0.7, n = 400
    lo, hi = bootstrap_ci(y, n_boot=4000, seed=2)
    half = 1.96 * math.sqrt(0.7 * 0.3 / 400)  # 0.0449
    assert abs(lo - (0.7 - half)) < 0.01 and abs(hi - (0.7 + half)) < 0.01
    assert bootstrap_ci(y, n_boot=300, seed=5) == bootstrap_ci(y, n_boot=300, seed=5)  # seeded


def test_outcomes_are_checked():
    with pytest.raises(ValueError, match="0, 0.5 or 1"):
        win_rate_from_outcomes([1, 0.3])
    with pytest.raises(ValueError, match="equal-length"):
        win_rate([1, 2], [1])


def test_equal_lengths_give_the_raw_win_rate():
    # tanh(0) = 0 for every prompt: the slope is held at 0 by its penalty and sigmoid(theta_0) = mean(y)
    y = [1, 1, 0.5, 0, 1, 1, 0, 1]
    lc = length_controlled_win_rate(y, [10] * 8, [10] * 8, n_boot=200)
    assert lc.raw_rate == pytest.approx(5.5 / 8, abs=1e-12)
    assert lc.rate == pytest.approx(5.5 / 8, abs=1e-9) and lc.length_coef == 0.0 and lc.sigma == 0.0
    assert lc.intercept == pytest.approx(math.log(5.5 / 2.5), abs=1e-9)


def test_logistic_fit_matches_a_generic_optimiser():
    optimize = pytest.importorskip("scipy.optimize")
    rng = np.random.default_rng(3)
    delta = rng.normal(50, 200, size=600)
    y = (rng.random(600) < 1 / (1 + np.exp(-(0.3 + 1.2 * np.tanh(delta / delta.std()))))).astype(float)
    lc = length_controlled_win_rate(y, delta + 300, np.full(600, 300.0), l2=0.0, n_boot=50)
    x = np.tanh(delta / delta.std())

    def nll(t):  # the unpenalised logistic log-loss, written out independently
        z = t[0] + t[1] * x
        return np.mean(np.logaddexp(0, z) - y * z)

    ref = optimize.minimize(nll, [0.0, 0.0], method="BFGS", options={"gtol": 1e-10}).x
    assert lc.intercept == pytest.approx(ref[0], abs=1e-5) and lc.length_coef == pytest.approx(ref[1], abs=1e-5)


def test_length_only_judge_high_raw_but_even_length_controlled():
    # the judge looks only at length: P(policy wins) = sigmoid(3 tanh(delta / sigma)); the policy's
    # answers are longer on average, so it wins most comparisons while being no better at equal length
    rng = np.random.default_rng(4)
    n = 3000
    ref_len = rng.integers(50, 400, size=n).astype(float)
    pol_len = ref_len + rng.normal(150, 150, size=n)
    delta = pol_len - ref_len
    p_win = 1 / (1 + np.exp(-3 * np.tanh(delta / delta.std())))
    y = (rng.random(n) < p_win).astype(float)
    lc = length_controlled_win_rate(y, pol_len, ref_len, n_boot=300, seed=5)
    assert lc.raw_rate > 0.75
    assert abs(lc.rate - 0.5) < 0.05 and lc.ci_low < 0.5 < lc.ci_high
    assert lc.length_coef == pytest.approx(3.0, abs=0.4)


def test_lc_handles_perfect_separation():
    # longer always wins: the penalty keeps the fit finite and the controlled rate near even
    delta = np.array([-30.0, -10, 10, 20, 40, 50])
    y = (delta > 0).astype(float)
    lc = length_controlled_win_rate(y, delta + 100, np.full(6, 100.0), n_boot=100)
    assert math.isfinite(lc.length_coef) and lc.raw_rate == 4 / 6
    assert 0.2 < lc.rate < 0.8


def test_cluster_bootstrap_resamples_whole_prompts():
    # Two prompts whose three samples agree: a resample holds 0, 1 or 2 copies of the winning
    # prompt, so its mean is 0, 1/2 or 1 with probabilities 1/4, 1/2, 1/4 (the 30% and 70%
    # quantiles are both 1/2); resampling single comparisons would give means in steps of 1/6.
    y, prompts = [0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1, 1]
    assert bootstrap_ci(y, n_boot=4000, seed=1, level=0.4, clusters=prompts) == (0.5, 0.5)
    assert bootstrap_ci(y, n_boot=4000, seed=1, clusters=prompts) == (0.0, 1.0)
    assert bootstrap_ci(y, n_boot=4000, seed=1, level=0.4) != (0.5, 0.5)  # single comparisons: steps of 1/6


def test_cluster_ci_is_the_ci_of_prompt_means_not_k_times_narrower():
    rng = np.random.default_rng(4)
    per_prompt = rng.integers(0, 2, size=60).astype(float)  # 60 prompts, each sample agrees with its prompt
    y = np.repeat(per_prompt, 5)
    prompts = np.repeat(np.arange(60), 5)
    lo_c, hi_c = bootstrap_ci(y, n_boot=4000, seed=2, clusters=prompts)
    lo_p, hi_p = bootstrap_ci(per_prompt, n_boot=4000, seed=3)
    lo_i, hi_i = bootstrap_ci(y, n_boot=4000, seed=2)
    assert hi_c - lo_c == pytest.approx(hi_p - lo_p, rel=0.1)
    assert hi_i - lo_i < 0.55 * (hi_c - lo_c)  # about 1/sqrt(5) of it: the naive CI overstates the evidence
    wr = win_rate(y, 1 - y, clusters=prompts, n_boot=2000)  # policy wins exactly where per_prompt is 1
    assert wr.rate == pytest.approx(per_prompt.mean()) and wr.ci_high - wr.ci_low == pytest.approx(hi_c - lo_c, rel=0.2)
    lc = length_controlled_win_rate(y, [10] * 300, [10] * 300, n_boot=2000, clusters=prompts)
    assert lc.ci_high - lc.ci_low == pytest.approx(hi_c - lo_c, rel=0.2)
    with pytest.raises(ValueError, match="label every"):
        bootstrap_ci(y, clusters=prompts[:-1])
