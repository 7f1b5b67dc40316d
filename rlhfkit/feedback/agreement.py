"""Inter-annotator agreement: Krippendorff's alpha, Cohen's kappa, Fleiss' kappa (numpy only).

Krippendorff's alpha follows K. Krippendorff, "Computing Krippendorff's Alpha-Reliability"
(2011): build the coincidence matrix o_ck from every ordered pair of values within a unit
(each pair weighted 1/(m_u - 1), m_u = values in unit u; units with fewer than two values are
not pairable and dropped), marginals n_c, and

    alpha = 1 - (n - 1) * sum_ck o_ck d2_ck / sum_ck n_c n_k d2_ck

with d2 = [c != k] (nominal), (c - k)^2 (interval) or, for ordinal data,
(sum_{g=c..k} n_g - (n_c + n_k) / 2)^2, which depends only on the order of values.

Cohen's kappa (1960): kappa = (p_o - p_e) / (1 - p_e) for two raters on the same items.
Fleiss' kappa (1971): kappa = (P_bar - P_e) / (1 - P_e) from an items x categories count matrix.
With n_i raters on item i, P_i = (sum_j n_ij^2 - n_i) / (n_i (n_i - 1)), P_bar their mean and
p_j = sum_i n_ij / sum_i n_i. When every item has the same number of raters this is exactly
Fleiss' statistic; items with fewer than 2 ratings are dropped.
"""

from __future__ import annotations

import numpy as np

METRICS = ("nominal", "ordinal", "interval")


def _delta2(values: np.ndarray, n_c: np.ndarray, metric: str) -> np.ndarray:
    c = values[:, None]
    k = values[None, :]
    if metric == "nominal":
        return (c != k).astype(float)
    if metric == "interval":
        return (c - k) ** 2
    if metric == "ordinal":
        cum = np.concatenate([[0.0], np.cumsum(n_c)])  # cum[i] = sum of n_g for g < i
        i = np.arange(len(values))
        lo, hi = np.minimum(i[:, None], i[None, :]), np.maximum(i[:, None], i[None, :])
        between = cum[hi + 1] - cum[lo]  # sum_{g=lo..hi} n_g
        return (between - (n_c[:, None] + n_c[None, :]) / 2) ** 2
    raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")


def coincidence_matrix(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(values, o) from a raters x units array with NaN for missing."""
    data = np.asarray(data, dtype=float)
    values = np.unique(data[~np.isnan(data)])
    o = np.zeros((len(values), len(values)))
    for unit in data.T:  # (raters,)
        present = unit[~np.isnan(unit)]
        m = len(present)
        if m < 2:
            continue
        idx = np.searchsorted(values, present)
        counts = np.bincount(idx, minlength=len(values)).astype(float)  # (V,)
        # ordered pairs of distinct raters: counts_c * counts_k, minus self-pairs on the diagonal
        o += (np.outer(counts, counts) - np.diag(counts)) / (m - 1)
    return values, o


def krippendorff_alpha(data, metric: str = "ordinal") -> float:
    """Krippendorff's alpha of a raters x units array (NaN = missing); NaN if undefined."""
    values, o = coincidence_matrix(data)
    n_c = o.sum(axis=1)
    n = n_c.sum()
    if n < 2 or len(values) < 2:
        return float("nan")
    d2 = _delta2(values, n_c, metric)
    expected = (np.outer(n_c, n_c) * d2).sum()
    if expected == 0:
        return float("nan")
    return float(1.0 - (n - 1) * (o * d2).sum() / expected)


def cohen_kappa(labels_a, labels_b) -> float:
    """Cohen's kappa of two raters' labels on the same items (any hashable labels)."""
    a, b = list(labels_a), list(labels_b)
    if len(a) != len(b):
        raise ValueError(f"two raters need the same number of labels ({len(a)} != {len(b)})")
    if not a:
        return float("nan")
    cats = sorted(set(a) | set(b), key=str)
    pos = {c: i for i, c in enumerate(cats)}
    table = np.zeros((len(cats), len(cats)))
    for x, y in zip(a, b):
        table[pos[x], pos[y]] += 1
    n = table.sum()
    p_o = np.trace(table) / n
    p_e = (table.sum(axis=1) @ table.sum(axis=0)) / n**2
    if p_e == 1:
        return float("nan")
    return float((p_o - p_e) / (1 - p_e))


def fleiss_kappa(counts) -> float:
    """Fleiss' kappa of an items x categories matrix of rating counts (see module docstring)."""
    counts = np.asarray(counts, dtype=float)
    n_i = counts.sum(axis=1)  # (N,)
    counts, n_i = counts[n_i >= 2], n_i[n_i >= 2]
    if len(counts) == 0:
        return float("nan")
    p_i = ((counts**2).sum(axis=1) - n_i) / (n_i * (n_i - 1))  # (N,)
    p_bar = p_i.mean()
    p_j = counts.sum(axis=0) / n_i.sum()  # (k,)
    p_e = (p_j**2).sum()
    if p_e == 1:
        return float("nan")
    return float((p_bar - p_e) / (1 - p_e))


def raw_agreement(counts) -> float:
    """Mean pairwise raw agreement of an items x categories count matrix.

    P_u = sum_c n_uc (n_uc - 1) / (m_u (m_u - 1)): the share of ordered pairs of distinct raters
    of unit u that gave the same category; the result is the mean of P_u over units with
    m_u >= 2 (Fleiss' P_bar, without any chance correction). NaN if no unit qualifies.
    """
    counts = np.asarray(counts, dtype=float)
    m = counts.sum(axis=1)  # (N,)
    counts, m = counts[m >= 2], m[m >= 2]
    if len(counts) == 0:
        return float("nan")
    return float((((counts * (counts - 1)).sum(axis=1)) / (m * (m - 1))).mean())


def kendall_tau_b(x, y) -> float:
    """Kendall's tau-b of two rankings of the same objects (ties allowed).

    tau_b = (n_c - n_d) / sqrt((n_0 - n_x) (n_0 - n_y)) with n_0 = n (n - 1) / 2 pairs, n_c / n_d
    the concordant / discordant pairs, n_x / n_y the pairs tied in x / in y (Kendall 1945).
    NaN when either ranking ties everything (the denominator is 0).
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"two rankings of the same objects are needed ({x.shape} != {y.shape})")
    i, j = np.triu_indices(len(x), k=1)
    dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])  # (n_0,)
    n0 = len(i)
    denom = np.sqrt((n0 - np.sum(dx == 0)) * (n0 - np.sum(dy == 0)))
    if denom == 0:
        return float("nan")
    return float(np.sum(dx * dy) / denom)
