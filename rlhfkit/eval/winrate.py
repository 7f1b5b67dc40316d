"""Win rate of a policy against a reference, raw and length-controlled, with bootstrap CIs.

Each evaluation prompt has one policy completion and one reference completion. The outcome of
prompt i is y_i = 1 if the judge prefers the policy's answer, 0 if the reference's, 1/2 for a
tie; the win rate is mean(y). From a gold scorer, a tie is |s_policy - s_reference| <= tie_tol.

Length control follows AlpacaEval 2 (Dubois et al. 2024, "Length-Controlled AlpacaEval"): a
logistic regression of the outcome on the normalised length difference,

    P(win_i) = sigmoid(theta_0 + theta_1 * tanh(delta_i / sigma)),   delta_i = len_policy_i - len_reference_i,

with sigma the standard deviation of delta over the prompts, and the length-controlled win rate
is the prediction with the length term zeroed, sigmoid(theta_0): the win rate the policy would
have if its answers were as long as the reference's. Departures from AlpacaEval: one policy
and one reference only, so there is no per-instruction difficulty term; ties enter as
fractional outcomes; theta_1 (not theta_0) carries a small L2 penalty, ``l2 / 2 * theta_1^2``
added to the mean log-loss, so the fit stays finite when length separates wins perfectly.

Confidence intervals are percentile bootstraps over prompts, seeded and vectorised: B resamples
are drawn at once as an index matrix (B, n) (the regression, as multinomial weights (B, n), fit
by batched Newton steps). sigma is held at its full-sample value inside the bootstrap.

With several completions per prompt the comparisons of one prompt are not independent (an easy
prompt is easy for every sample), so ``clusters`` (one label per comparison, e.g. the prompt
index) makes the bootstrap resample whole clusters: a comparison's weight in a resample is the
number of times its cluster was drawn. Without it, K samples per prompt would shrink the CI as if
there were K times as many prompts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass
class WinRate:
    rate: float
    ci_low: float
    ci_high: float
    n: int
    wins: int
    ties: int
    losses: int


@dataclass
class LengthControlledWinRate:
    rate: float  # sigmoid(theta_0): predicted win rate at zero length difference
    ci_low: float
    ci_high: float
    raw_rate: float
    intercept: float  # theta_0
    length_coef: float  # theta_1
    sigma: float  # the length-difference scale (characters or tokens, as given)
    n: int


def win_outcomes(policy_scores: Sequence[float], reference_scores: Sequence[float], tie_tol: float = 0.0) -> np.ndarray:
    """Outcome per prompt from gold scores: 1 policy better, 0 reference better, 0.5 within tie_tol."""
    p, r = np.asarray(policy_scores, dtype=float), np.asarray(reference_scores, dtype=float)
    if p.shape != r.shape or p.ndim != 1 or p.size == 0:
        raise ValueError(f"need two equal-length, non-empty score lists, got shapes {p.shape} and {r.shape}")
    d = p - r
    return np.where(np.abs(d) <= tie_tol, 0.5, (d > 0).astype(float))


def cluster_weights(clusters: Sequence, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap weights (B, n) that resample whole clusters: entry (b, i) is how many times
    resample b drew the cluster of item i (clusters are drawn uniformly with replacement)."""
    _, label = np.unique(np.asarray(clusters), return_inverse=True)  # (n,) cluster index per item
    c = int(label.max()) + 1
    drawn = rng.multinomial(c, np.full(c, 1.0 / c), size=n_boot).astype(float)  # (B, C)
    return drawn[:, label]  # (B, n)


def bootstrap_ci(values: Sequence[float], n_boot: int = 2000, seed: int = 0, level: float = 0.95,
                 clusters: Sequence | None = None) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (resampling items with replacement,
    or whole clusters of items when ``clusters`` labels each item)."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        raise ValueError("no values to bootstrap")
    rng = np.random.default_rng(seed)
    if clusters is None:
        idx = rng.integers(0, v.size, size=(n_boot, v.size))  # (B, n)
        means = v[idx].mean(axis=1)  # (B,)
    else:
        if len(clusters) != v.size:
            raise ValueError(f"clusters must label every value: {len(clusters)} labels for {v.size} values")
        w = cluster_weights(clusters, n_boot, rng)  # (B, n)
        means = (w * v).sum(axis=1) / w.sum(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def win_rate_from_outcomes(outcomes: Sequence[float], n_boot: int = 2000, seed: int = 0, level: float = 0.95,
                           clusters: Sequence | None = None) -> WinRate:
    """Win rate and bootstrap CI from outcomes in {0, 0.5, 1} (e.g. from a pairwise judge);
    ``clusters`` (e.g. the prompt of each comparison) makes the bootstrap resample clusters."""
    y = np.asarray(outcomes, dtype=float)
    if y.size == 0 or not np.isin(y, (0.0, 0.5, 1.0)).all():
        raise ValueError("outcomes must be a non-empty list of 0, 0.5 or 1")
    lo, hi = bootstrap_ci(y, n_boot, seed, level, clusters)
    return WinRate(float(y.mean()), lo, hi, int(y.size), int((y == 1).sum()), int((y == 0.5).sum()), int((y == 0).sum()))


def win_rate(policy_scores: Sequence[float], reference_scores: Sequence[float], tie_tol: float = 0.0,
             n_boot: int = 2000, seed: int = 0, level: float = 0.95, clusters: Sequence | None = None) -> WinRate:
    """Win rate of the policy over the reference by gold scores of paired completions (ties = 1/2)."""
    return win_rate_from_outcomes(win_outcomes(policy_scores, reference_scores, tie_tol), n_boot, seed, level,
                                  clusters)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def fit_length_logistic(y: np.ndarray, x: np.ndarray, weights: np.ndarray, l2: float, iters: int = 100) -> np.ndarray:
    """Batched Newton fit of P(y) = sigmoid(t0 + t1 x) with multiplicity ``weights`` (B, n); returns (B, 2).

    Minimises mean_i w_bi * logloss_i / n + l2/2 * t1^2 for each row b independently.
    """
    n = y.size
    X = np.stack([np.ones_like(x), x], axis=1)  # (n, 2)
    theta = np.zeros((weights.shape[0], 2))  # (B, 2)
    ridge = np.diag([0.0, l2])
    for _ in range(iters):
        p = _sigmoid(theta @ X.T)  # (B, n)
        grad = (weights * (p - y)) @ X / n + theta @ ridge  # (B, 2)
        curv = weights * p * (1 - p)  # (B, n)
        hess = np.einsum("bn,ni,nj->bij", curv, X, X) / n + ridge  # (B, 2, 2)
        hess += 1e-12 * np.eye(2)  # all-win or all-loss resamples: keep the step defined
        step = np.linalg.solve(hess, grad[..., None])[..., 0]
        theta -= step
        if np.abs(step).max() < 1e-10:
            break
    return theta


def length_controlled_win_rate(outcomes: Sequence[float], policy_lengths: Sequence[float],
                               reference_lengths: Sequence[float], l2: float = 1e-3, n_boot: int = 1000,
                               seed: int = 0, level: float = 0.95,
                               clusters: Sequence | None = None) -> LengthControlledWinRate:
    """AlpacaEval-2-style length-controlled win rate; see the module docstring."""
    y = np.asarray(outcomes, dtype=float)
    lp, lr = np.asarray(policy_lengths, dtype=float), np.asarray(reference_lengths, dtype=float)
    if not (y.shape == lp.shape == lr.shape) or y.ndim != 1 or y.size == 0:
        raise ValueError(f"outcomes and both length lists must have the same non-zero length, got "
                         f"{y.shape}, {lp.shape}, {lr.shape}")
    if ((y < 0) | (y > 1)).any():
        raise ValueError("outcomes must lie in [0, 1]")
    delta = lp - lr
    sigma = float(delta.std())
    x = np.tanh(delta / sigma) if sigma > 0 else np.zeros_like(delta)
    theta = fit_length_logistic(y, x, np.ones((1, y.size)), l2)[0]
    rng = np.random.default_rng(seed)
    if clusters is None:
        counts = rng.multinomial(y.size, np.full(y.size, 1.0 / y.size), size=n_boot).astype(float)  # (B, n)
    else:
        if len(clusters) != y.size:
            raise ValueError(f"clusters must label every outcome: {len(clusters)} labels for {y.size} outcomes")
        counts = cluster_weights(clusters, n_boot, rng)  # (B, n)
    boot = _sigmoid(fit_length_logistic(y, x, counts, l2)[:, 0])
    lo, hi = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    return LengthControlledWinRate(float(_sigmoid(theta[0])), float(lo), float(hi), float(y.mean()),
                                   float(theta[0]), float(theta[1]), sigma, int(y.size))
