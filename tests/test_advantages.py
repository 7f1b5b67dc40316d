"""Advantages: GAE against a naive per-sequence loop and its closed-form special cases; whitening
statistics; GRPO / Dr. GRPO / RLOO group baselines against plain-Python references and worked
examples; token rewards (score on the last real token) and the KL placement switch."""

import math
import statistics

import pytest
import torch

from rlhfkit.advantages import (
    gae,
    group_advantages,
    last_token_index,
    rewards_with_kl,
    rloo_advantages,
    token_rewards,
    whiten,
)

LENGTHS = [9, 1, 4, 7, 2]


def _close(actual, expected, atol=1e-6):
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=actual.dtype), atol=atol, rtol=0)


def _batch(seed=0, B=5, T=9, garbage=1e3):
    gen = torch.Generator().manual_seed(seed)
    mask = torch.zeros(B, T, dtype=torch.long)
    for b, L in enumerate(LENGTHS[:B]):
        mask[b, :L] = 1
    rewards = torch.randn(B, T, generator=gen, dtype=torch.float64)
    values = torch.randn(B, T, generator=gen, dtype=torch.float64)
    # padding holds garbage: nothing of it may leak into real positions
    rewards = torch.where(mask.bool(), rewards, garbage)
    values = torch.where(mask.bool(), values, -garbage)
    return rewards, values, mask


def _naive_gae(rewards, values, L, gamma, lam):
    adv, a = [0.0] * L, 0.0
    for t in reversed(range(L)):
        v_next = values[t + 1] if t + 1 < L else 0.0
        a = rewards[t] + gamma * v_next - values[t] + gamma * lam * a
        adv[t] = a
    return adv


@pytest.mark.parametrize("gamma,lam", [(0.99, 0.9), (1.0, 0.95), (0.5, 0.0), (1.0, 1.0)])
def test_gae_matches_naive_loop(gamma, lam):
    rewards, values, mask = _batch()
    adv, ret = gae(rewards, values, mask, gamma=gamma, lam=lam)
    for b, L in enumerate(LENGTHS):
        ref = _naive_gae(rewards[b].tolist(), values[b].tolist(), L, gamma, lam)
        assert adv[b, :L].tolist() == pytest.approx(ref, abs=1e-12)
        assert adv[b, L:].abs().sum().item() == 0.0 and ret[b, L:].abs().sum().item() == 0.0
    torch.testing.assert_close(ret, (adv + values) * mask, atol=1e-12, rtol=0)


def test_gae_closed_forms():
    rewards, values, mask = _batch(seed=1)
    m = mask.double()
    # gamma = lam = 1: A_t = (sum_{s >= t} r_s) - V_t, the Monte Carlo return minus the baseline
    adv, ret = gae(rewards, values, mask, gamma=1.0, lam=1.0)
    mc_return = (rewards * m).flip(1).cumsum(1).flip(1) * m
    torch.testing.assert_close(ret, mc_return, atol=1e-12, rtol=0)
    # lam = 0: the one-step TD error r_t + gamma V_{t+1} - V_t (V after the last token is 0)
    adv, _ = gae(rewards, values, mask, gamma=0.9, lam=0.0)
    assert adv[2, :4].tolist() == pytest.approx(
        [rewards[2, t].item() + 0.9 * (values[2, t + 1].item() if t < 3 else 0.0) - values[2, t].item() for t in range(4)],
        abs=1e-12)
    # a single-token sequence: A = r - V
    assert adv[1, 0].item() == pytest.approx(rewards[1, 0].item() - values[1, 0].item(), abs=1e-12)


def test_gae_ignores_value_gradients_and_checks_shapes():
    rewards, values, mask = _batch()
    values.requires_grad_(True)
    adv, ret = gae(rewards, values, mask)
    assert not adv.requires_grad and not ret.requires_grad
    with pytest.raises(ValueError, match="values must be"):
        gae(rewards, values[:, :3], mask)


def test_whiten_statistics():
    values, _, mask = _batch(seed=2)
    w = whiten(values, mask)
    real = w[mask.bool()]
    assert real.mean().item() == pytest.approx(0.0, abs=1e-12)
    assert real.std().item() == pytest.approx(1.0, abs=1e-6)  # Bessel-corrected, eps 1e-8
    assert w[~mask.bool()].abs().sum().item() == 0.0
    raw = values[mask.bool()]
    kept = whiten(values, mask, shift_mean=False)[mask.bool()]
    assert kept.mean().item() == pytest.approx(raw.mean().item(), abs=1e-12)
    torch.testing.assert_close(kept - raw.mean(), (raw - raw.mean()) / raw.std(), atol=1e-6, rtol=0)
    one = whiten(torch.tensor([[3.0, 9.0]]), torch.tensor([[1, 0]]))  # one real token: 0, not NaN
    assert one.tolist() == [[0.0, 0.0]]
    with pytest.raises(ValueError, match="no real tokens"):
        whiten(torch.ones(1, 2), torch.zeros(1, 2))


# ---------------------------------------------------------------- group baselines
def _naive_group(rewards, G, scale, eps=1e-4):
    out = []
    for i in range(0, len(rewards), G):
        g = rewards[i:i + G]
        mean = sum(g) / len(g)
        if len(g) == 1 or max(g) == min(g):
            out += [0.0] * len(g)
        elif scale == "std":
            out += [(r - mean) / (statistics.stdev(g) + eps) for r in g]
        else:
            out += [r - mean for r in g]
    return out


@pytest.mark.parametrize("scale", ["std", "none"])
def test_group_advantages_match_naive(scale):
    gen = torch.Generator().manual_seed(4)
    flat = torch.randn(24, generator=gen, dtype=torch.float64)
    flat[8:12] = 0.7  # one group with zero std
    adv = group_advantages(flat, group_size=4, scale=scale)
    assert adv.tolist() == pytest.approx(_naive_group(flat.tolist(), 4, scale), abs=1e-12)
    assert adv[8:12].tolist() == [0.0] * 4
    torch.testing.assert_close(group_advantages(flat.view(6, 4), scale=scale), adv.view(6, 4), atol=0, rtol=0)


def test_group_advantages_worked_example_and_degenerate_groups():
    r = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64)  # mean 0.25, sample std 0.5
    assert group_advantages(r, 4).tolist() == pytest.approx([0.75 / 0.5001, -0.25 / 0.5001, -0.25 / 0.5001, -0.25 / 0.5001], abs=1e-12)
    assert group_advantages(r, 4, scale="none").tolist() == pytest.approx([0.75, -0.25, -0.25, -0.25], abs=1e-15)
    single = group_advantages(torch.tensor([3.0, -1.0, 5.0]), group_size=1)  # G = 1: no baseline
    assert single.tolist() == [0.0, 0.0, 0.0]
    tied = group_advantages(torch.full((2, 3), 0.1), scale="std")  # 0.1 is inexact in binary
    assert tied.tolist() == [[0.0] * 3] * 2 and not torch.isnan(tied).any()
    with pytest.raises(ValueError, match="do not split into groups of 4"):
        group_advantages(torch.zeros(6), group_size=4)
    with pytest.raises(ValueError, match="scale"):
        group_advantages(r, 4, scale="batch")
    with pytest.raises(ValueError, match="group_size=3"):
        group_advantages(torch.zeros(2, 4), group_size=3)


def test_rloo_closed_form():
    r = torch.tensor([1.0, 2.0, 6.0, 4.0, 4.0, 1.0], dtype=torch.float64)
    adv = rloo_advantages(r, group_size=3)
    # group 1: baselines (2+6)/2, (1+6)/2, (1+2)/2; group 2: (4+1)/2, (4+1)/2, (4+4)/2
    assert adv.tolist() == pytest.approx([-3.0, -1.5, 4.5, 1.5, 1.5, -3.0], abs=1e-15)
    g = r.view(2, 3)
    torch.testing.assert_close(rloo_advantages(g), 1.5 * (g - g.mean(-1, keepdim=True)), atol=1e-15, rtol=0)
    assert rloo_advantages(g).sum(-1).abs().max().item() < 1e-12  # zero-sum within a group
    assert rloo_advantages(torch.tensor([2.0, 3.0]), group_size=1).tolist() == [0.0, 0.0]


# ---------------------------------------------------------------- token rewards and KL placement
def test_token_rewards_put_score_on_last_real_token():
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]])
    kl = torch.full((3, 4), 0.5)
    score = torch.tensor([1.0, 2.0, 3.0])
    r = token_rewards(score, kl, mask, kl_coef=0.1)
    _close(r, [[-0.05, -0.05, 0.95, 0.0], [1.95, 0.0, 0.0, 0.0], [-0.05, -0.05, -0.05, 2.95]])
    assert last_token_index(mask).tolist() == [2, 0, 3]
    with pytest.raises(ValueError, match=r"rows \[1\] of mask have no real token"):
        token_rewards(score, kl, torch.tensor([[1, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0]]), 0.1)
    with pytest.raises(ValueError, match="score must be"):
        token_rewards(score[:2], kl, mask, 0.1)


def test_rewards_with_kl_placement():
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    logp = torch.tensor([[-1.0, -2.0, -9.0], [-0.5, -0.5, -0.5]])
    ref = torch.tensor([[-1.5, -1.0, 0.0], [-0.5, -1.5, -0.25]])
    score = torch.tensor([1.0, -1.0])
    k1 = (logp - ref) * mask  # (0.5, -1, 0 | 0, 1, -0.25)
    r, kl = rewards_with_kl(score, logp, ref, mask, placement="reward", kl_coef=0.2, estimator="k1")
    torch.testing.assert_close(kl, k1.float(), atol=1e-7, rtol=0)
    _close(r, [[-0.1, 0.2 + 1.0, 0.0], [0.0, -0.2, 0.05 - 1.0]])
    r, kl = rewards_with_kl(score, logp, ref, mask, placement="loss", kl_coef=0.2, estimator="k1")
    _close(r, [[0.0, 1.0, 0.0], [0.0, 0.0, -1.0]])  # the KL waits for the loss
    torch.testing.assert_close(kl, k1.float(), atol=1e-7, rtol=0)
    _, kl3 = rewards_with_kl(score, logp, ref, mask, placement="loss", kl_coef=0.2, estimator="k3")
    assert kl3[0, 0].item() == pytest.approx(math.exp(-0.5) - 1 + 0.5, abs=1e-6)
    with pytest.raises(ValueError, match="placement"):
        rewards_with_kl(score, logp, ref, mask, placement="both", kl_coef=0.2)
