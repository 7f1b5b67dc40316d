"""Policy-gradient losses: closed forms, per-element clipping and its zero gradient, the three
aggregations against naive loops, GRPO's KL term, sequence-level REINFORCE, the PPO2 value loss,
and entropy (with a parity test against TRL's ``entropy_from_logits``)."""

import math

import pytest
import torch

from rlhfkit.losses.kl import kl_k2, kl_k3
from rlhfkit.losses.policy import (
    aggregate,
    entropy_from_logits,
    grpo_loss,
    ppo_policy_loss,
    ppo_value_loss,
    reinforce_loss,
)

D = torch.float64


def _rollout(seed=0, B=4, T=6, lengths=(6, 2, 4, 1)):
    gen = torch.Generator().manual_seed(seed)
    mask = torch.zeros(B, T, dtype=torch.long)
    for b, L in enumerate(lengths):
        mask[b, :L] = 1
    old = -torch.rand(B, T, generator=gen, dtype=D) * 3
    logp = (old + 0.3 * torch.randn(B, T, generator=gen, dtype=D)).requires_grad_(True)
    adv = torch.randn(B, T, generator=gen, dtype=D)
    return logp, old, adv, mask


def test_ratio_one_gives_minus_mean_advantage():
    _, old, adv, mask = _rollout()
    logp = old.clone().requires_grad_(True)
    loss, m = ppo_policy_loss(logp, old, adv, mask, clip_eps=0.2)
    assert loss.item() == pytest.approx(-adv[mask.bool()].mean().item(), abs=1e-12)
    assert m["clip_fraction"].item() == 0.0 and m["approx_kl"].item() == 0.0
    assert m["ratio_min"].item() == m["ratio_max"].item() == 1.0
    seq_adv = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=D)  # (B,) broadcast over tokens
    loss, _ = ppo_policy_loss(logp, old, seq_adv, mask, aggregation="sequence_mean")
    assert loss.item() == pytest.approx(-seq_adv.mean().item(), abs=1e-12)
    assert not any(v.requires_grad for v in m.values())


def test_clipping_per_element_and_zero_gradient_where_clipped():
    ratios = [0.5, 0.79, 0.81, 1.0, 1.19, 1.21, 2.0, 1.27, 1.29]
    for eps_high in (None, 0.28):
        high = 0.2 if eps_high is None else eps_high
        r = torch.tensor(ratios * 2, dtype=D)
        A = torch.tensor([1.0] * len(ratios) + [-1.0] * len(ratios), dtype=D)
        old = torch.full_like(r, -1.0).unsqueeze(0)  # (1, N)
        logp = (old + r.log()).requires_grad_(True)
        mask = torch.ones_like(old, dtype=torch.long)
        N = r.numel()
        loss, m = ppo_policy_loss(logp, old, A.unsqueeze(0), mask, clip_eps=0.2, clip_eps_high=eps_high,
                                  aggregation="constant", max_tokens=N)  # loss = sum / N
        (grad,) = torch.autograd.grad(loss * N, logp)
        expect_loss, expect_clipped = [], []
        for ri, ai in zip(r.tolist(), A.tolist()):
            clipped_r = min(max(ri, 0.8), 1 + high)
            expect_loss.append(-min(ri * ai, clipped_r * ai))
            expect_clipped.append((ai > 0 and ri > 1 + high) or (ai < 0 and ri < 0.8))
        assert loss.item() * N == pytest.approx(sum(expect_loss), abs=1e-12)
        for i, (ri, ai, c) in enumerate(zip(r.tolist(), A.tolist(), expect_clipped)):
            # d/dlogp of -r A is -r A where the unclipped branch is active, and 0 where clipped
            assert grad[0, i].item() == pytest.approx(0.0 if c else -ri * ai, abs=1e-12), (ri, ai)
        assert m["clip_fraction"].item() == pytest.approx(sum(expect_clipped) / N)
        n_high = sum(c and ri > 1 for ri, c in zip(r.tolist(), expect_clipped))
        assert m["clip_fraction_high"].item() == pytest.approx(n_high / N)
        assert m["ratio_max"].item() == pytest.approx(2.0) and m["ratio_min"].item() == pytest.approx(0.5)
        assert m["approx_kl"].item() == pytest.approx(sum(x - 1 - math.log(x) for x in r.tolist()) / N, abs=1e-12)
    assert sum(expect_clipped) == 2 + 2  # eps_high 0.28: r = 2.0 and 1.29 high; 0.5 and 0.79 low


def _naive_aggregate(per_token, mask, how, max_tokens=None):
    rows = [[per_token[b][t] for t in range(len(mask[b])) if mask[b][t]] for b in range(len(mask))]
    if how == "token_mean":
        return sum(map(sum, rows)) / sum(map(len, rows))
    if how == "sequence_mean":
        return sum(sum(r) / max(len(r), 1) for r in rows) / len(rows)
    return sum(map(sum, rows)) / (len(rows) * max_tokens)


@pytest.mark.parametrize("how", ["token_mean", "sequence_mean", "constant"])
def test_aggregations_match_naive_loops(how):
    logp, old, adv, mask = _rollout(seed=1)
    loss, _ = ppo_policy_loss(logp, old, adv, mask, clip_eps=0.2, aggregation=how, max_tokens=8)
    ratio = (logp - old).exp().tolist()
    A = adv.tolist()
    per_token = [[-min(r * a, min(max(r, 0.8), 1.2) * a) for r, a in zip(rr, aa)] for rr, aa in zip(ratio, A)]
    assert loss.item() == pytest.approx(_naive_aggregate(per_token, mask.tolist(), how, 8), abs=1e-12)


def test_aggregation_docstring_example_and_token_weights():
    per_token = torch.tensor([[1.0, 1.0, 1.0], [4.0, 9.0, 9.0]], dtype=D)
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    assert aggregate(per_token, mask, "token_mean").item() == pytest.approx(7 / 4)
    assert aggregate(per_token, mask, "sequence_mean").item() == pytest.approx(5 / 2)
    assert aggregate(per_token, mask, "constant", max_tokens=3).item() == pytest.approx(7 / 6)
    # equal lengths: token mean and sequence mean coincide; Dr. GRPO's constant scales by tokens/(B*max)
    full = torch.ones_like(mask)
    assert aggregate(per_token, full, "token_mean").item() == pytest.approx(aggregate(per_token, full, "sequence_mean").item())
    # gradient weight of one token at ratio 1 (loss -A/...): 1/N, 1/(B|y_i|), 1/(B max_tokens)
    logp = torch.zeros(2, 3, dtype=D, requires_grad=True)
    A = torch.ones(2, dtype=D)
    weights = {}
    for how in ("token_mean", "sequence_mean", "constant"):
        loss, _ = ppo_policy_loss(logp, logp.detach(), A, mask, aggregation=how, max_tokens=5)
        weights[how] = torch.autograd.grad(loss, logp)[0]
    assert weights["token_mean"][mask.bool()].tolist() == pytest.approx([-1 / 4] * 4)
    assert weights["sequence_mean"][mask.bool()].tolist() == pytest.approx([-1 / 6] * 3 + [-1 / 2])
    assert weights["constant"][mask.bool()].tolist() == pytest.approx([-1 / 10] * 4)
    for w in weights.values():
        assert w[~mask.bool()].abs().sum().item() == 0.0
    with pytest.raises(ValueError, match="max_tokens"):
        aggregate(per_token, mask, "constant")
    with pytest.raises(ValueError, match="aggregation must be one of"):
        aggregate(per_token, mask, "sum")


def test_grpo_loss_is_ppo_plus_beta_kl():
    logp, old, _, mask = _rollout(seed=2)
    seq_adv = torch.tensor([0.5, -1.0, 1.5, 0.0], dtype=D)
    ref = old - 0.2
    base, _ = ppo_policy_loss(logp, old, seq_adv, mask, aggregation="sequence_mean")
    loss0, m0 = grpo_loss(logp, old, seq_adv, mask)  # beta 0: no reference needed
    assert loss0.item() == pytest.approx(base.item(), abs=1e-15) and "kl" not in m0
    for name, fn in (("k3", kl_k3), ("k2", kl_k2)):
        loss, m = grpo_loss(logp, old, seq_adv, mask, ref_logp=ref, beta=0.04, kl_estimator=name)
        kl = fn(logp.detach(), ref)
        expect = base.item() + 0.04 * aggregate(kl, mask, "sequence_mean").item()
        assert loss.item() == pytest.approx(expect, abs=1e-12)
        assert m["kl"].item() == pytest.approx(kl[mask.bool()].mean().item(), abs=1e-12)
    # gradient of the k3 term alone (zero advantages): beta * (1 - ref/pi) per token, / (B |y_i|)
    zero = torch.zeros(4, dtype=D)
    loss, _ = grpo_loss(logp, old, zero, mask, ref_logp=ref, beta=0.5, aggregation="constant", max_tokens=1)
    (g,) = torch.autograd.grad(loss, logp)
    expect = 0.5 * (1 - (ref - logp.detach()).exp()) / 4 * mask
    torch.testing.assert_close(g, expect, atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="needs ref_logp"):
        grpo_loss(logp, old, seq_adv, mask, beta=0.1)


def test_reinforce_loss_on_policy_and_clipped():
    _, old, _, mask = _rollout(seed=3)
    A = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=D)
    logp = old.clone().requires_grad_(True)
    loss, m = reinforce_loss(logp, old, A, mask)
    assert loss.item() == pytest.approx(-A.mean().item(), abs=1e-12)
    (g,) = torch.autograd.grad(loss, logp)  # REINFORCE: -(1/B) A_i grad sum_t logp_it
    torch.testing.assert_close(g, -(A / 4).unsqueeze(1) * mask, atol=1e-12, rtol=0)
    # sequence ratios e^0.5 = 1.65 for every row: clipped where A > 0, not where A < 0
    shifted = (old + 0.5 * mask / mask.sum(1, keepdim=True)).requires_grad_(True)
    loss, m = reinforce_loss(shifted, old, A, mask, clip_eps=0.2)
    rho = math.exp(0.5)
    expect = -sum(min(rho * a, 1.2 * a) for a in A.tolist()) / 4
    assert loss.item() == pytest.approx(expect, abs=1e-12)
    assert m["clip_fraction"].item() == pytest.approx(3 / 4)
    (g,) = torch.autograd.grad(loss, shifted)
    assert g[[0, 2, 3]].abs().sum().item() == 0.0  # clipped rows: no gradient
    torch.testing.assert_close(g[1], torch.full((6,), 2.0 * rho / 4, dtype=D) * mask[1], atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="advantages must be"):
        reinforce_loss(logp, old, torch.zeros(4, 6, dtype=D), mask)


def test_value_loss_clipping_per_element():
    old = torch.zeros(1, 5, dtype=D)
    returns = torch.tensor([[1.0, 1.0, 1.0, -1.0, 0.1]], dtype=D)
    values = torch.tensor([[0.1, 0.5, 2.0, 0.5, -0.3]], dtype=D, requires_grad=True)
    mask = torch.ones(1, 5, dtype=torch.long)
    loss, m = ppo_value_loss(values, old, returns, mask, clip_eps=0.2, aggregation="constant", max_tokens=5)
    (g,) = torch.autograd.grad(loss * 5, values)
    # 0.1: inside the range, plain error; 0.5 -> clipped to 0.2, further from 1: clipped error wins,
    # zero grad; 2.0 -> clip 0.2: error 0.64 < 1.0, unclipped wins; 0.5 vs R=-1: clip 0.2 error 1.44
    # < 2.25, unclipped wins; -0.3 -> clip -0.2 error 0.09 < 0.16, unclipped wins.
    expect = [0.5 * 0.81, 0.5 * 0.64, 0.5 * 1.0, 0.5 * 2.25, 0.5 * 0.16]
    assert loss.item() * 5 == pytest.approx(sum(expect), abs=1e-12)
    assert g[0].tolist() == pytest.approx([-0.9, 0.0, 1.0, 1.5, -0.4], abs=1e-12)
    assert m["value_clip_fraction"].item() == pytest.approx(1 / 5)
    assert m["value_error"].item() == pytest.approx((0.81 + 0.25 + 1.0 + 2.25 + 0.16) / 5, abs=1e-12)


def test_entropy_from_logits():
    V = 11
    assert entropy_from_logits(torch.zeros(3, V)).tolist() == pytest.approx([math.log(V)] * 3, abs=1e-6)
    gen = torch.Generator().manual_seed(5)
    logits = torch.randn(2, 7, V, generator=gen, dtype=D) * 3
    p = logits.softmax(-1)
    naive = -(p * p.log()).sum(-1)
    torch.testing.assert_close(entropy_from_logits(logits, chunk_size=3), naive, atol=1e-12, rtol=0)
    torch.testing.assert_close(entropy_from_logits(logits, chunk_size=1), entropy_from_logits(logits, chunk_size=1000))
    half = logits.to(torch.bfloat16)
    out = entropy_from_logits(half)
    assert out.dtype == torch.float32 and out.shape == (2, 7)
    torch.testing.assert_close(out, entropy_from_logits(half.float()), atol=0, rtol=0)  # same as upcast first


def test_entropy_parity_with_trl():
    trl_utils = pytest.importorskip("trl.trainer.utils")
    gen = torch.Generator().manual_seed(6)
    logits = torch.randn(3, 5, 40, generator=gen) * 2
    torch.testing.assert_close(entropy_from_logits(logits), trl_utils.entropy_from_logits(logits), atol=1e-6, rtol=0)
