"""Reward over-optimisation curves: Gao, Schulman & Hilton 2022, "Scaling Laws for Reward Model
Overoptimization".

With d = sqrt(KL(policy || initial policy)) (nats), the gold reward, measured relative to the
initial policy's, follows

    best-of-N:  R_bon(d) = d (alpha - beta d)          (eq. 1)
    RL:         R_rl(d)  = d (alpha - beta log d)      (eq. 2)

Both are linear in (alpha, beta), so they are fitted by ordinary least squares without an
intercept (R(0) = 0 by construction): features (d, -d^2) and (d, -d log d), with d log d = 0 at
d = 0. Rewards must be differences from the initial policy's reward; ``fit_*`` does not subtract
anything. R^2 is the usual centred 1 - SS_res / SS_tot. For best-of-N the KL is analytic,
KL_bon(N) = log N - (N - 1) / N (Stiennon et al. 2020, appendix), see ``best_of_n_kl``.
The proxy reward can be fitted with the same forms; Gao et al. use them for the gold reward.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

FORMS = ("best_of_n", "rl")


def best_of_n_kl(n: int) -> float:
    """KL(best-of-n || base) = log n - (n - 1) / n nats."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return math.log(n) - (n - 1) / n


def best_of_n_for_kl(kl: float, n_max: float = 1e12) -> float:
    """The (real) N whose best-of-N KL is ``kl``: the inverse of log N - 1 + 1/N, which rises
    from 0 at N = 1 (its derivative 1/N - 1/N^2 is positive for N > 1); found by bisection on log N."""
    if not 0 <= kl <= best_of_n_kl(int(n_max)):
        raise ValueError(f"kl must be in [0, {best_of_n_kl(int(n_max)):.4g}] nats, got {kl}")
    lo, hi = 0.0, math.log(n_max)
    for _ in range(200):
        mid = (lo + hi) / 2
        n = math.exp(mid)
        lo, hi = (mid, hi) if math.log(n) - (n - 1) / n < kl else (lo, mid)
    return math.exp((lo + hi) / 2)


def _features(form: str, d: np.ndarray) -> np.ndarray:
    if form == "best_of_n":
        return np.stack([d, -d * d], axis=1)  # (n, 2)
    if form == "rl":
        d_log_d = np.where(d > 0, d * np.log(np.where(d > 0, d, 1.0)), 0.0)
        return np.stack([d, -d_log_d], axis=1)
    raise ValueError(f"form must be one of {FORMS}, got {form!r}")


@dataclass
class GaoFit:
    form: str
    alpha: float
    beta: float
    r2: float
    d: np.ndarray  # sqrt(KL) of the fitted points
    reward: np.ndarray

    def predict(self, d: Sequence[float] | np.ndarray) -> np.ndarray:
        """R(d) under the fitted coefficients."""
        return _features(self.form, np.asarray(d, dtype=float)) @ np.array([self.alpha, self.beta])

    def curve(self, points: int = 100, d_max: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(d, R(d)) on an even grid from 0 to ``d_max`` (default: the largest fitted d)."""
        grid = np.linspace(0.0, float(self.d.max()) if d_max is None else d_max, points)
        return grid, self.predict(grid)

    @property
    def peak(self) -> tuple[float, float] | None:
        """(d*, R(d*)) where the fitted gold reward is highest, or None if it never turns (beta <= 0).

        best-of-N: d* = alpha / (2 beta), R* = alpha^2 / (4 beta);
        RL: dR/dd = alpha - beta (log d + 1) = 0 gives d* = exp(alpha / beta - 1), R* = beta d*.
        """
        if self.beta <= 0:
            return None
        if self.form == "best_of_n":
            return self.alpha / (2 * self.beta), self.alpha**2 / (4 * self.beta)
        d_star = math.exp(self.alpha / self.beta - 1)
        return d_star, self.beta * d_star


def fit_gao(form: str, kl: Sequence[float], reward: Sequence[float]) -> GaoFit:
    """Least-squares fit of Gao et al.'s ``form`` ("best_of_n" or "rl") to (KL, reward) points."""
    kl_arr, r = np.asarray(kl, dtype=float), np.asarray(reward, dtype=float)
    if kl_arr.shape != r.shape or kl_arr.ndim != 1:
        raise ValueError(f"kl and reward must be equal-length lists, got shapes {kl_arr.shape} and {r.shape}")
    if not np.isfinite(kl_arr).all() or not np.isfinite(r).all():
        raise ValueError("kl and reward must be finite")
    if (kl_arr < -1e-9).any():
        raise ValueError(f"KL must be >= 0, got min {kl_arr.min()}")
    d = np.sqrt(np.clip(kl_arr, 0.0, None))
    if np.unique(d[d > 0]).size < 2:
        raise ValueError("need at least two distinct positive KL values to fit two coefficients")
    X = _features(form, d)
    (alpha, beta), *_ = np.linalg.lstsq(X, r, rcond=None)
    ss_res = float(((r - X @ np.array([alpha, beta])) ** 2).sum())
    ss_tot = float(((r - r.mean()) ** 2).sum())
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else (1.0 if ss_res == 0 else 0.0)
    return GaoFit(form, float(alpha), float(beta), r2, d, r)


def fit_best_of_n(kl: Sequence[float], reward: Sequence[float]) -> GaoFit:
    """R(d) = d (alpha - beta d), d = sqrt(KL)."""
    return fit_gao("best_of_n", kl, reward)


def fit_rl(kl: Sequence[float], reward: Sequence[float]) -> GaoFit:
    """R(d) = d (alpha - beta log d), d = sqrt(KL)."""
    return fit_gao("rl", kl, reward)
