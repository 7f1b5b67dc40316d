"""Reward losses: closed forms, Plackett-Luce/Bradley-Terry agreement, TRL parity."""

from __future__ import annotations

import math
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

from rlhfkit.losses.reward import bradley_terry_loss, plackett_luce_loss, rating_regression_loss


def test_bradley_terry_closed_form():
    # -log sigmoid(1) = log(1 + e^-1)
    loss, m = bradley_terry_loss(torch.tensor([1.0]), torch.tensor([0.0]))
    assert loss.item() == pytest.approx(math.log1p(math.exp(-1.0)), abs=1e-7)
    assert m["accuracy"] == 1.0


def test_bradley_terry_label_smoothing_and_margin_closed_form():
    # eps = 0.1: 0.9 * log(1 + e^-1) + 0.1 * log(1 + e^1)
    loss, _ = bradley_terry_loss(torch.tensor([1.0]), torch.tensor([0.0]), label_smoothing=0.1)
    expected = 0.9 * math.log1p(math.exp(-1)) + 0.1 * math.log1p(math.exp(1))
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    # margin 0.5: -log sigmoid(1 - 0.5)
    loss, _ = bradley_terry_loss(torch.tensor([1.0]), torch.tensor([0.0]), margin=0.5)
    assert loss.item() == pytest.approx(math.log1p(math.exp(-0.5)), abs=1e-7)
    # eps = 0.5 ignores the label: swapping chosen and rejected gives the same loss
    a, b = torch.tensor([2.0, -1.0]), torch.tensor([0.0, 0.5])
    assert bradley_terry_loss(a, b, label_smoothing=0.5)[0].item() == pytest.approx(
        bradley_terry_loss(b, a, label_smoothing=0.5)[0].item(), abs=1e-7
    )


def test_bradley_terry_weights():
    c, r = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    l0, l1 = math.log1p(math.exp(-1)), math.log1p(math.exp(1))
    loss, _ = bradley_terry_loss(c, r, weights=torch.tensor([3.0, 1.0]))
    assert loss.item() == pytest.approx((3 * l0 + l1) / 4, abs=1e-6)
    # scale invariance and zero weight = dropping the pair
    assert bradley_terry_loss(c, r, weights=torch.tensor([6.0, 2.0]))[0].item() == pytest.approx(loss.item(), abs=1e-7)
    assert bradley_terry_loss(c, r, weights=torch.tensor([1.0, 0.0]))[0].item() == pytest.approx(l0, abs=1e-7)
    with pytest.raises(ValueError):
        bradley_terry_loss(c, r, weights=torch.tensor([-1.0, 1.0]))
    with pytest.raises(ValueError):
        bradley_terry_loss(c, r, weights=torch.tensor([0.0, 0.0]))


def test_ties_count_as_wrong_in_accuracy():
    _, m = bradley_terry_loss(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 0.0]))
    assert m["accuracy"] == 0.5


def _trl_compute_loss(chosen, rejected, margin=None, center=None):
    """Run TRL's own RewardTrainer.compute_loss on a model that returns the given rewards."""
    from trl import RewardTrainer

    logits = torch.cat([chosen, rejected]).unsqueeze(-1)
    model = lambda **kw: SimpleNamespace(logits=logits)  # noqa: E731
    ident = SimpleNamespace(gather_for_metrics=lambda x: x, gather=lambda x: x)
    stub = SimpleNamespace(
        model=SimpleNamespace(training=True),
        args=SimpleNamespace(center_rewards_coefficient=center),
        accelerator=ident,
        _total_train_tokens=0,
        _tp_size=1,
        _metrics={"train": defaultdict(list)},
    )
    inputs = {"input_ids": torch.zeros(2 * len(chosen), 3, dtype=torch.long),
              "attention_mask": torch.ones(2 * len(chosen), 3, dtype=torch.long)}
    if margin is not None:
        inputs["margin"] = margin
    return RewardTrainer.compute_loss(stub, model, inputs)


@pytest.mark.parametrize("use_margin,center", [(False, None), (True, None), (True, 0.01), (False, 0.5)])
def test_parity_with_trl_reward_trainer(use_margin, center):
    pytest.importorskip("trl")
    g = torch.Generator().manual_seed(0)
    chosen, rejected = torch.randn(16, generator=g, dtype=torch.float64), torch.randn(16, generator=g, dtype=torch.float64)
    margin = torch.rand(16, generator=g, dtype=torch.float64) if use_margin else None
    ours, _ = bradley_terry_loss(chosen, rejected, margin=margin, center_rewards_coef=center or 0.0)
    theirs = _trl_compute_loss(chosen, rejected, margin, center)
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-6)


def test_plackett_luce_k2_equals_bradley_terry():
    g = torch.Generator().manual_seed(1)
    c, r = torch.randn(8, generator=g), torch.randn(8, generator=g)
    w = torch.rand(8, generator=g)
    rewards = torch.stack([r, c], dim=1)  # chosen in slot 1 to check order does not matter
    tiers = torch.tensor([[1, 0]] * 8)
    pl, _ = plackett_luce_loss(rewards, tiers, weights=w)
    bt, _ = bradley_terry_loss(c, r, weights=w)
    assert pl.item() == pytest.approx(bt.item(), abs=1e-6)


def test_plackett_luce_closed_form_k3():
    # -(2 - log(e^2 + e + 1)) - (1 - log(e + 1))
    loss, m = plackett_luce_loss(torch.tensor([[2.0, 1.0, 0.0]]), torch.tensor([[0, 1, 2]]))
    expected = (math.log(math.e**2 + math.e + 1) - 2) + (math.log(math.e + 1) - 1)
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(0.720868, abs=1e-6)
    assert m["pair_accuracy"] == 1.0


def test_plackett_luce_ties_rule():
    # tiers [[0, 1], [2]]: each tied response must beat only response 2
    rewards = torch.tensor([[0.3, -0.2, 0.1]])
    loss, _ = plackett_luce_loss(rewards, torch.tensor([[0, 0, 1]]))
    expected = sum(math.log(math.exp(x) + math.exp(0.1)) - x for x in (0.3, -0.2))
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    # a ranking that is all one tier says nothing
    assert plackett_luce_loss(rewards, torch.tensor([[0, 0, 0]]))[0].item() == 0.0
    # missing slot (-1) equals the ranking without it
    a = plackett_luce_loss(torch.tensor([[1.0, 5.0, 0.0]]), torch.tensor([[0, -1, 1]]))[0]
    b = plackett_luce_loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[0, 1]]))[0]
    assert a.item() == pytest.approx(b.item(), abs=1e-7)


def test_plackett_luce_permutation_invariant_and_matches_naive_loop():
    g = torch.Generator().manual_seed(2)
    rewards = torch.randn(1, 5, generator=g, dtype=torch.float64)
    tiers = torch.tensor([[2, 0, 1, 3, 1]])
    loss = plackett_luce_loss(rewards, tiers)[0].item()
    perm = torch.tensor([4, 2, 0, 1, 3])
    assert plackett_luce_loss(rewards[:, perm], tiers[:, perm])[0].item() == pytest.approx(loss, abs=1e-12)
    r, t = rewards[0].tolist(), tiers[0].tolist()
    naive = sum(
        math.log(math.exp(r[k]) + sum(math.exp(r[j]) for j in range(5) if t[j] > t[k])) - r[k] for k in range(5)
    )
    assert loss == pytest.approx(naive, abs=1e-10)


def test_rating_regression_closed_form():
    # rating 5 on 1..7 -> 1/3; reward 0 -> (1/3)^2; rating 1 -> -1, reward -1 -> 0
    loss, _ = rating_regression_loss(torch.tensor([0.0, -1.0]), torch.tensor([5.0, 1.0]),
                                     weights=torch.tensor([1.0, 1.0]))
    assert loss.item() == pytest.approx((1 / 9) / 2, abs=1e-7)
    loss, _ = rating_regression_loss(torch.tensor([0.0]), torch.tensor([3.0]), scale_min=0, scale_max=10)
    assert loss.item() == pytest.approx(0.16, abs=1e-6)  # t = 0.6 - 1 = -0.4
    with pytest.raises(ValueError):
        rating_regression_loss(torch.tensor([0.0]), torch.tensor([3.0]), scale_min=5, scale_max=5)


def test_losses_have_gradients():
    c = torch.tensor([0.2, -0.1], requires_grad=True)
    r = torch.tensor([0.0, 0.3], requires_grad=True)
    loss, _ = bradley_terry_loss(c, r, label_smoothing=0.05)
    loss.backward()
    # d/dc of -log sigmoid(c - r) is -(1 - sigmoid(c - r)) < 0 for eps small
    assert (c.grad < 0).all() and (r.grad > 0).all()
