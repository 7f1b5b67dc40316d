"""A best-of-N sweep from one fixed pool of samples: expected proxy and gold reward of best-of-N
under the proxy for every N up to the pool size, without drawing N fresh samples per N.

Order statistics (the estimator Gao et al. 2022 use for their best-of-N curves, appendix): take
M samples of one prompt and sort them by proxy score, ascending, i = 1..M. A uniformly random
N-subset has sample i as its proxy-best exactly when i is in it and the other N - 1 come from
the i - 1 below it, so

    P(best of a random N-subset = i) = C(i - 1, N - 1) / C(M, N)                    (*)

and E[gold of best-of-N] = sum_i (*) gold_i, likewise for the proxy. This is the exact mean over
all C(M, N) subsets, so it is an unbiased estimate of best-of-N from the policy, with far less
variance than drawing one N-subset. Ties in the proxy are broken as ``rollout.best_of_n`` breaks
them (the first of equal maxima, by sample index), so (*) equals brute-force enumeration there too.

Rewards are reported as differences from N = 1 (the starting policy's mean), the form Gao et
al.'s fits expect, with percentile-bootstrap 95% CIs that resample prompts (the samples of one
prompt are not independent). KL per N is analytic, ``overoptimization.best_of_n_kl`` (an upper
bound, Beirami et al. 2024).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from rlhfkit.eval.overoptimization import best_of_n_kl


def best_of_n_weights(m: int, n: int) -> np.ndarray:
    """(m,) P(the i-th lowest of m samples is the best of a random n-subset) = C(i-1, n-1) / C(m, n)."""
    if not 1 <= n <= m:
        raise ValueError(f"best-of-N needs 1 <= N <= the {m} samples per prompt, got N = {n}")
    total = math.comb(m, n)
    return np.array([math.comb(i - 1, n - 1) / total for i in range(1, m + 1)])  # sums to 1


def proxy_rank_order(proxy: np.ndarray) -> np.ndarray:
    """(P, M) sample indices sorted by proxy ascending, equal scores by DESCENDING index, so the
    highest rank of any subset is its first (lowest-index) maximum, as in ``rollout.best_of_n``."""
    m = proxy.shape[1]
    # lexsort sorts by the last key first: proxy ascending, then -index ascending (index descending)
    return np.stack([np.lexsort((-np.arange(m), row)) for row in proxy])


def expected_best_of_n(proxy: Sequence, values: Sequence, ns: Sequence[int]) -> np.ndarray:
    """(P, len(ns)) expected ``values`` of the proxy-best of N samples, per prompt, from (P, M)
    arrays of proxy scores and of the values to average (the gold scores, or the proxy itself)."""
    proxy, values = np.asarray(proxy, dtype=float), np.asarray(values, dtype=float)
    if proxy.ndim != 2 or proxy.shape != values.shape or proxy.size == 0:
        raise ValueError(f"proxy and values must be equal (prompts, samples) arrays, got {proxy.shape} and {values.shape}")
    if not (np.isfinite(proxy).all() and np.isfinite(values).all()):
        raise ValueError("proxy and values must be finite")
    order = proxy_rank_order(proxy)
    ranked = np.take_along_axis(values, order, axis=1)  # (P, M), ascending proxy
    w = np.stack([best_of_n_weights(proxy.shape[1], n) for n in ns], axis=1)  # (M, K)
    return ranked @ w  # (P, K)


def _ci(per_prompt: np.ndarray, idx: np.ndarray, level: float) -> np.ndarray:
    """(K, 2) percentile intervals of the mean over resampled prompts; ``idx`` is (B, P)."""
    means = per_prompt[idx].mean(axis=1)  # (B, K)
    return np.quantile(means, [(1 - level) / 2, (1 + level) / 2], axis=0).T


def bon_sweep(proxy: Sequence, gold: Sequence, ns: Sequence[int], n_boot: int = 2000, seed: int = 0,
              level: float = 0.95) -> list[dict]:
    """One point per N: ``{n, kl, proxy, gold, proxy_ci95, gold_ci95, proxy_abs, gold_abs}``.

    ``proxy``/``gold`` are (P, M) scores of M samples per prompt; ``proxy``/``gold`` in a point
    are means over prompts minus the N = 1 value (so 0 at N = 1), ``*_abs`` the raw means, and the
    CIs resample prompts (the same resamples for every N and both rewards).
    """
    ns = sorted(set(int(n) for n in ns) | {1})
    proxy_a, gold_a = np.asarray(proxy, dtype=float), np.asarray(gold, dtype=float)
    e_proxy = expected_best_of_n(proxy_a, proxy_a, ns)  # (P, K)
    e_gold = expected_best_of_n(proxy_a, gold_a, ns)
    d_proxy, d_gold = e_proxy - e_proxy[:, :1], e_gold - e_gold[:, :1]  # gains over N = 1, per prompt
    idx = np.random.default_rng(seed).integers(0, proxy_a.shape[0], size=(n_boot, proxy_a.shape[0]))
    ci_proxy, ci_gold = _ci(d_proxy, idx, level), _ci(d_gold, idx, level)
    return [{"n": n, "kl": best_of_n_kl(n), "proxy": float(d_proxy[:, k].mean()), "gold": float(d_gold[:, k].mean()),
             "proxy_ci95": [float(x) for x in ci_proxy[k]], "gold_ci95": [float(x) for x in ci_gold[k]],
             "proxy_abs": float(e_proxy[:, k].mean()), "gold_abs": float(e_gold[:, k].mean())}
            for k, n in enumerate(ns)]


def gold_turn(proxy: Sequence, gold: Sequence, ns: Sequence[int], n_boot: int = 2000, seed: int = 0,
              level: float = 0.95) -> dict:
    """Is the gold's peak interior? The N with the highest mean gold, and the paired bootstrap CI
    (resampling prompts) of gold(N_peak) - gold(N_max). ``significant_drop``: that CI lies above
    0, the gold fell past its best point by more than its sampling error; ``interior``: also the
    best point is neither the smallest nor the largest N (best-of-N helped the gold, then hurt
    it). A significant drop from the smallest N means the proxy misleads from the start. (N_peak
    is picked on the same data, which favours finding a peak a little; the CI is on the fall from
    it, not on where it is.)"""
    ns = sorted(set(int(n) for n in ns))
    proxy_a = np.asarray(proxy, dtype=float)
    e_gold = expected_best_of_n(proxy_a, gold, ns)  # (P, K)
    means = e_gold.mean(axis=0)
    k_peak = int(np.argmax(means))
    drop = e_gold[:, k_peak] - e_gold[:, -1]  # (P,) paired per prompt
    idx = np.random.default_rng(seed).integers(0, drop.size, size=(n_boot, drop.size))
    lo, hi = np.quantile(drop[idx].mean(axis=1), [(1 - level) / 2, (1 + level) / 2])
    return {"n_peak": ns[k_peak], "n_max": ns[-1], "gold_peak": float(means[k_peak]), "gold_at_n_max": float(means[-1]),
            "drop": float(drop.mean()), "drop_ci95": [float(lo), float(hi)],
            "significant_drop": bool(lo > 0), "interior": bool(0 < k_peak < len(ns) - 1 and lo > 0)}
