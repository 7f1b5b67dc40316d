"""Gao et al. 2022 over-optimisation fits: known coefficients back from synthetic curves."""

import math

import numpy as np
import pytest

from rlhfkit.eval.overoptimization import best_of_n_kl, fit_best_of_n, fit_gao, fit_rl


def test_best_of_n_kl_closed_form():
    assert best_of_n_kl(1) == 0.0
    assert best_of_n_kl(2) == pytest.approx(math.log(2) - 0.5, abs=1e-15)
    assert best_of_n_kl(64) == pytest.approx(math.log(64) - 63 / 64, abs=1e-15)


def test_noiseless_best_of_n_recovers_coefficients_and_peak():
    kl = np.array([best_of_n_kl(n) for n in (1, 2, 4, 8, 16, 32, 64, 128, 256)])
    d = np.sqrt(kl)
    reward = d * (1.3 - 0.4 * d)
    fit = fit_best_of_n(kl, reward)
    assert fit.alpha == pytest.approx(1.3, abs=1e-10) and fit.beta == pytest.approx(0.4, abs=1e-10)
    assert fit.r2 == pytest.approx(1.0, abs=1e-12)
    d_star, r_star = fit.peak
    assert d_star == pytest.approx(1.3 / 0.8, abs=1e-9) and r_star == pytest.approx(1.3**2 / 1.6, abs=1e-9)
    grid, curve = fit.curve(points=5)
    assert grid[0] == 0.0 and grid[-1] == pytest.approx(d.max()) and curve == pytest.approx(grid * (1.3 - 0.4 * grid))


def test_noiseless_rl_recovers_coefficients_and_peak():
    kl = np.array([0.0, 0.25, 1.0, 2.0, 4.0, 9.0, 16.0, 25.0])
    d = np.sqrt(kl)
    reward = np.where(d > 0, d * (0.9 - 0.35 * np.log(np.where(d > 0, d, 1))), 0.0)
    fit = fit_rl(kl, reward)
    assert fit.alpha == pytest.approx(0.9, abs=1e-10) and fit.beta == pytest.approx(0.35, abs=1e-10)
    d_star, r_star = fit.peak
    assert d_star == pytest.approx(math.exp(0.9 / 0.35 - 1), rel=1e-9)
    assert r_star == pytest.approx(d_star * (0.9 - 0.35 * math.log(d_star)), rel=1e-9)
    assert fit.predict([0.0])[0] == 0.0  # d log d -> 0 at d = 0


@pytest.mark.parametrize("form,alpha,beta", [("best_of_n", 1.0, 0.25), ("rl", 0.8, 0.3)])
def test_noisy_fits_recover_coefficients(form, alpha, beta):
    rng = np.random.default_rng(0)
    d = np.repeat(np.linspace(0.2, 4.0, 20), 10)  # 200 points
    clean = d * (alpha - beta * (d if form == "best_of_n" else np.log(d)))
    fit = fit_gao(form, d**2, clean + rng.normal(0, 0.05, size=d.size))
    # standard errors of the coefficients here are ~0.005; allow five of them
    assert fit.alpha == pytest.approx(alpha, abs=0.03) and fit.beta == pytest.approx(beta, abs=0.03)
    assert 0.9 < fit.r2 < 1.0


def test_monotone_curve_has_no_peak_and_bad_input_is_refused():
    kl = [0.5, 1.0, 2.0]
    rising = fit_best_of_n(kl, [math.sqrt(k) + 0.1 * k for k in kl])  # R = d + 0.1 d^2
    assert rising.beta == pytest.approx(-0.1, abs=1e-10) and rising.peak is None  # it never turns
    with pytest.raises(ValueError, match=">= 0"):
        fit_rl([-1.0, 1.0, 2.0], [0, 1, 2])
    with pytest.raises(ValueError, match="two distinct"):
        fit_rl([0.0, 1.0, 1.0], [0, 1, 1])
    with pytest.raises(ValueError, match="equal-length"):
        fit_rl([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="form"):
        fit_gao("ppo", [1.0, 2.0], [1.0, 2.0])
