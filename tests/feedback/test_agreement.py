"""Agreement statistics against worked literature examples and independent libraries."""

import numpy as np
import pytest

from rlhfkit.feedback.agreement import cohen_kappa, fleiss_kappa, krippendorff_alpha

N = np.nan
# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 observers x 12
# units, values 1..5, with missing data. The paper reports alpha = 0.743 (nominal), 0.849 (interval).
KRIPP_EXAMPLE = np.array([
    [1, 2, 3, 3, 2, 1, 4, 1, 2, N, N, N],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, N, 3],
    [N, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, N],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, N],
])


def test_krippendorff_paper_example():
    assert krippendorff_alpha(KRIPP_EXAMPLE, "nominal") == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha(KRIPP_EXAMPLE, "interval") == pytest.approx(0.849, abs=5e-4)


@pytest.mark.parametrize("metric", ["nominal", "ordinal", "interval"])
def test_krippendorff_matches_reference_package(metric):
    kd = pytest.importorskip("krippendorff", reason="pip install krippendorff (test extra) for the parity check")
    rng = np.random.default_rng(0)
    for trial in range(5):
        truth = rng.integers(0, 4, size=30)
        data = np.array([np.where(rng.random(30) < 0.7, truth, rng.integers(0, 4, size=30)) for _ in range(4)], float)
        data[rng.random(data.shape) < 0.15] = np.nan
        ours = krippendorff_alpha(data, metric)
        ref = kd.alpha(reliability_data=data, level_of_measurement=metric)
        assert ours == pytest.approx(ref, rel=1e-10, abs=1e-12), (trial, metric)
    assert krippendorff_alpha(KRIPP_EXAMPLE, "ordinal") == pytest.approx(
        kd.alpha(reliability_data=KRIPP_EXAMPLE, level_of_measurement="ordinal"), rel=1e-12)


def test_krippendorff_ordinal_ignores_spacing_of_values():
    data = KRIPP_EXAMPLE.copy()
    stretched = np.where(np.isnan(data), np.nan, data**3)  # same order, different distances
    assert krippendorff_alpha(stretched, "ordinal") == pytest.approx(krippendorff_alpha(data, "ordinal"), rel=1e-12)
    assert krippendorff_alpha(stretched, "interval") != pytest.approx(krippendorff_alpha(data, "interval"), rel=1e-3)


def test_krippendorff_perfect_and_undefined():
    assert krippendorff_alpha(np.array([[1, 2, 3], [1, 2, 3]]), "ordinal") == 1.0
    assert np.isnan(krippendorff_alpha(np.array([[1, 1], [1, 1]]), "nominal"))  # no variation


def test_cohen_kappa_worked_example():
    # Wikipedia "Cohen's kappa" example: 50 grant proposals, both yes 20, A yes / B no 5,
    # A no / B yes 10, both no 15: p_o = 0.7, p_e = 0.5, kappa = 0.4.
    a = ["y"] * 20 + ["y"] * 5 + ["n"] * 10 + ["n"] * 15
    b = ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4, abs=1e-12)


def test_cohen_kappa_matches_statsmodels():
    sm = pytest.importorskip("statsmodels.stats.inter_rater", reason="statsmodels (test extra) for the parity check")
    rng = np.random.default_rng(1)
    a = rng.integers(0, 3, 200)
    b = np.where(rng.random(200) < 0.6, a, rng.integers(0, 3, 200))
    table = np.zeros((3, 3))
    for x, y in zip(a, b):
        table[x, y] += 1
    assert cohen_kappa(a, b) == pytest.approx(sm.cohens_kappa(table).kappa, rel=1e-12)


# Fleiss (1971) as reproduced on Wikipedia "Fleiss' kappa": 10 subjects, 14 raters, 5 categories;
# P_bar = 0.378, P_e = 0.213, kappa = 0.210.
FLEISS_EXAMPLE = [
    [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
]


def test_fleiss_kappa_worked_example():
    assert fleiss_kappa(FLEISS_EXAMPLE) == pytest.approx(0.210, abs=5e-4)


def test_fleiss_kappa_matches_statsmodels():
    sm = pytest.importorskip("statsmodels.stats.inter_rater", reason="statsmodels (test extra) for the parity check")
    rng = np.random.default_rng(2)
    for _ in range(5):
        counts = rng.multinomial(5, [0.5, 0.3, 0.15, 0.05], size=40)
        assert fleiss_kappa(counts) == pytest.approx(sm.fleiss_kappa(counts, method="fleiss"), rel=1e-12)


def test_fleiss_kappa_two_raters_is_scotts_pi():
    # With two raters per item Fleiss' kappa reduces to Scott's pi (pooled marginals).
    a = np.array([0, 0, 1, 1, 2, 0, 1, 2, 2, 0])
    b = np.array([0, 1, 1, 1, 2, 0, 2, 2, 0, 0])
    counts = np.zeros((10, 3))
    for i, (x, y) in enumerate(zip(a, b)):
        counts[i, x] += 1
        counts[i, y] += 1
    p_o = np.mean(a == b)
    pooled = np.bincount(np.concatenate([a, b]), minlength=3) / 20
    pi = (p_o - (pooled**2).sum()) / (1 - (pooled**2).sum())
    assert fleiss_kappa(counts) == pytest.approx(pi, rel=1e-12)
