"""benchmarks/active_selection.py: its selection logic, its disagreement being the server ranker's,
and its summary arithmetic, on synthetic features and a tiny model (no SmolLM2)."""

import math
import random

import pytest
import torch

from rlhfkit.models import save_tiny
from rlhfkit.models.reward_model import RewardModel
from rlhfkit.rewards.ensemble import pair_disagreement
from rlhfkit.schema import PreferencePair

from tests.benchmark_modules import load_benchmark



al = load_benchmark("active_selection")
features = load_benchmark("active_features")


def test_disagreement_picks_the_highest_scores_among_unlabelled_only():
    scores = torch.tensor([0.9, 0.1, 0.8, 0.3, 0.7, 0.2])
    unlabelled = [1, 2, 3, 4, 5]  # item 0 (the highest score) is labelled already
    assert al.select("disagreement", scores, unlabelled, 2, random.Random(0)) == [2, 4]
    # ties go to the lower index, so the choice does not depend on set or dict order
    assert al.select("disagreement", torch.tensor([0.5, 0.5, 0.5]), [2, 0, 1], 2, random.Random(0)) == [0, 1]


def test_random_is_seeded_and_ignores_scores():
    unlabelled = list(range(100))
    a = al.select("random", None, unlabelled, 10, random.Random("7-random"))
    b = al.select("random", torch.zeros(100), unlabelled, 10, random.Random("7-random"))
    c = al.select("random", None, unlabelled, 10, random.Random("8-random"))
    assert a == b and a != c and len(set(a)) == 10


def test_mixed_takes_the_top_half_then_distinct_random_items():
    scores = torch.arange(20, dtype=torch.float32)  # item 19 scores highest
    got = al.select("mixed", scores, list(range(20)), 5, random.Random(1))
    assert got[:3] == [19, 18, 17] and len(set(got)) == 5 and not set(got[3:]) & {19, 18, 17}


def test_select_refuses_bad_requests():
    with pytest.raises(ValueError, match="only 2 are unlabelled"):
        al.select("random", None, [0, 1], 3, random.Random(0))
    with pytest.raises(ValueError, match="unknown strategy"):
        al.select("greedy", torch.zeros(2), [0, 1], 1, random.Random(0))


def test_feature_disagreement_equals_the_server_rankers(tmp_path):
    """Heads applied to the cached read-out give the ranker's own disagreement (full forward)."""
    backbone = save_tiny(tmp_path / "lm", layers=1, hidden=32)
    ensemble = RewardModel.from_backbone(backbone, n_heads=3, seed=1).eval()
    with torch.no_grad():  # spread the heads so the scores differ between pairs
        ensemble.head.weight.mul_(torch.tensor([[1.0], [-2.0], [3.0]]))
    pairs = [PreferencePair(prompt=f"question {i}?", chosen="yes " * (i + 1), rejected=f"no {i}") for i in range(5)]
    expected = pair_disagreement([ensemble], pairs, max_length=64)  # (5,)
    xc, xr = features.extract(str(backbone), pairs, max_length=64)  # (5, 32) each
    got = al.disagreement_scores(ensemble.head, xc, xr)
    assert xc.shape == (5, 32)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)
    assert len({round(float(v), 5) for v in expected}) == 5  # a constant would pass unnoticed


def test_heads_learn_a_toy_preference_and_keep_their_init_where_no_pair_varies():
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(8, generator=gen)
    xa, xb = torch.randn(200, 8, generator=gen), torch.randn(200, 8, generator=gen)
    xa[:, 0] = xb[:, 0] = 0.0  # no training pair varies along feature 0
    a_better = (xa - xb) @ w > 0
    pref, other = al.oriented(xa, xb, list(range(200)), a_better)
    assert torch.all((pref - other) @ w > 0)  # orientation puts the preferred answer first
    cfg = al.HeadConfig(n_heads=4, lr=5e-2, steps=30, batch_size=64)
    head = al.train_heads(pref, other, cfg, seed=3)
    assert al.gold_accuracy(head, xa, xb, a_better) > 0.9
    # feature 0 never gets a gradient, so its weights stay at the seeded init (normal, std 0.02),
    # and the disagreement on a pair differing only there is the spread of those init weights
    init = torch.randn((4, 8), generator=torch.Generator().manual_seed(3)) * 0.02
    probe = torch.zeros(1, 8)
    probe[0, 0] = 1.0
    got = al.disagreement_scores(head, probe, torch.zeros(1, 8))
    torch.testing.assert_close(got, init[:, 0].std(unbiased=False).reshape(1), rtol=1e-6, atol=0.0)


def test_labels_to_reach_interpolates_in_log_labels():
    budgets, acc = [50, 100, 200], [0.6, 0.7, 0.8]
    # 0.75 lies halfway from 100 to 200 in log space: 100 * sqrt(2)
    assert al.labels_to_reach(budgets, acc, 0.75) == pytest.approx(100 * math.sqrt(2), rel=1e-12)
    assert al.labels_to_reach(budgets, acc, 0.55) == 50.0
    assert al.labels_to_reach(budgets, acc, 0.81) is None


def test_mean_ci_uses_the_t_quantile():
    m, h = al.mean_ci([0.6, 0.7, 0.8])
    assert m == pytest.approx(0.7) and h == pytest.approx(4.303 * 0.1 / math.sqrt(3), rel=1e-12)


def test_bagged_heads_weight_pairs_by_their_own_bootstrap_counts():
    gen = torch.Generator().manual_seed(1)
    xc, xr = torch.randn(40, 6, generator=gen), torch.randn(40, 6, generator=gen)
    trainer = al.HeadTrainer(xc, xr, al.HeadConfig(n_heads=3, steps=2, bootstrap=True), seed=5)
    assert trainer.boot.shape == (3, 40) and torch.all(trainer.boot.sum(dim=1) == 40)
    assert not torch.equal(trainer.boot[0], trainer.boot[1])  # each head has its own resample
    idx = list(range(40))
    loss, _ = trainer.loss(idx)
    # independent: the weighted Bradley-Terry mean per head, summed over heads
    margins = (trainer.model(xc) - trainer.model(xr)).detach()  # (40, 3)
    w = trainer.boot.T  # (40, 3)
    expected = sum(float((w[:, h] * torch.nn.functional.softplus(-margins[:, h])).sum() / w[:, h].sum())
                   for h in range(3))
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert al.HeadTrainer(xc, xr, al.HeadConfig(n_heads=3), seed=5).boot is None
