"""KL estimators k1/k2/k3 and the best-of-n KL bound, checked against exact enumeration.

(a) Values: the mean of each estimator over 200k seeded draws from a small categorical matches its
exact expectation within 5 standard errors (the SE computed exactly from the enumerated variance);
k1 and k3 expectations equal KL(pi || ref) exactly, k2's does not (bias far above the MC noise).
(b) Gradients: the expected in-loss gradient ``sum_y pi(y) grad k(y)`` (pi detached as the weight)
against autograd of the exact divergences, to 1e-6 (float64, so in practice ~1e-15).
"""

import math

import pytest
import torch

from rlhfkit.losses.kl import (
    KL_ESTIMATORS,
    best_of_n_kl_bound,
    kl_estimator,
    kl_k1,
    kl_k2,
    kl_k3,
    sequence_kl,
)

PI = torch.tensor([0.5, 0.2, 0.15, 0.1, 0.05], dtype=torch.float64)
REF = torch.tensor([0.1, 0.2, 0.3, 0.2, 0.2], dtype=torch.float64)
N_DRAWS = 200_000


def _exact_kl(p, q):
    return (p * (p.log() - q.log())).sum()


def _exact_moments(fn, p, q):
    k = fn(p.log(), q.log())  # value of the estimator at each outcome
    mean = (p * k).sum()
    return mean, (p * k**2).sum() - mean**2


@pytest.mark.parametrize("name", ["k1", "k2", "k3"])
def test_monte_carlo_mean_matches_exact_expectation(name):
    fn = KL_ESTIMATORS[name]
    gen = torch.Generator().manual_seed(1234)
    y = torch.multinomial(PI, N_DRAWS, replacement=True, generator=gen)  # (N,) samples from pi
    samples = fn(PI.log()[y], REF.log()[y])  # (N,)
    mean, var = _exact_moments(fn, PI, REF)
    se = math.sqrt(var.item() / N_DRAWS)
    assert abs(samples.mean().item() - mean.item()) < 5 * se, (samples.mean().item(), mean.item(), se)
    kl = _exact_kl(PI, REF).item()  # 0.5*log5 + 0.15*log0.5 + 0.1*log0.5 + 0.05*log0.25 = 0.562117
    assert kl == pytest.approx(0.5 * math.log(5) + 0.25 * math.log(0.5) + 0.05 * math.log(0.25), abs=1e-12)
    if name in ("k1", "k3"):  # unbiased: the exact expectation is the KL
        assert mean.item() == pytest.approx(kl, abs=1e-12)
        assert abs(samples.mean().item() - kl) < 5 * se
    else:  # k2 is biased: its expectation is far from the KL, by many standard errors
        assert abs(mean.item() - kl) > 20 * se
        assert abs(samples.mean().item() - kl) > 10 * se


def test_k2_bias_is_third_order_and_k3_has_lower_variance_near_ref():
    # ref = pi * exp(eps * h) renormalised: KL ~ eps^2, and E[k2] - KL ~ eps^3 (Schulman 2020).
    h = torch.tensor([1.0, -2.0, 0.5, 3.0, -1.0], dtype=torch.float64)
    biases = []
    for eps in (0.04, 0.02):
        ref = PI * torch.exp(eps * h)
        ref = ref / ref.sum()
        biases.append((_exact_moments(kl_k2, PI, ref)[0] - _exact_kl(PI, ref)).abs().item())
        var1, var3 = _exact_moments(kl_k1, PI, ref)[1], _exact_moments(kl_k3, PI, ref)[1]
        assert var3 < 0.1 * var1  # measured: var3/var1 = 0.0014 at eps 0.04
    assert biases[0] / biases[1] == pytest.approx(8.0, rel=0.1)  # measured 8.46


def test_signs_shapes_and_errors():
    gen = torch.Generator().manual_seed(0)
    logp, ref = torch.randn(4, 7, generator=gen), torch.randn(4, 7, generator=gen)
    assert (kl_k2(logp, ref) >= 0).all() and (kl_k3(logp, ref) >= 0).all()
    assert (kl_k1(logp, ref) < 0).any()  # k1 is unbiased but single samples go negative
    for fn in KL_ESTIMATORS.values():
        assert fn(logp, ref).shape == (4, 7)
        assert fn(logp, logp).abs().max().item() == 0.0  # pi == ref: every estimate is exactly 0
    r = torch.exp(ref - logp)
    assert torch.allclose(kl_k3(logp, ref), r - 1 - (ref - logp), atol=1e-5)
    with pytest.raises(ValueError, match="shape"):
        kl_k1(logp, ref[:, :3])
    with pytest.raises(ValueError, match="unknown KL estimator 'k4'"):
        kl_estimator("k4")


def test_sequence_kl_sums_real_tokens_only():
    per_token = torch.tensor([[0.1, 0.2, 0.3], [1.0, 5.0, 7.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    assert sequence_kl(per_token, mask).tolist() == pytest.approx([0.6, 1.0])
    with pytest.raises(ValueError, match="mask shape"):
        sequence_kl(per_token, mask[:, :2])


# ---------------------------------------------------------------- (b) gradients, per token
def _expected_grad(fn, theta, ref_logp):
    """sum_y pi(y) grad_theta k(log pi(y), log ref(y)), pi(y) detached as the weight."""
    logp = torch.log_softmax(theta, -1)
    surrogate = (logp.exp().detach() * fn(logp, ref_logp)).sum()
    return torch.autograd.grad(surrogate, theta)[0]


def _grad(fn_of_logp, theta):
    return torch.autograd.grad(fn_of_logp(torch.log_softmax(theta, -1)), theta)[0]


def test_in_loss_gradients_match_exact_kl_gradients():
    gen = torch.Generator().manual_seed(7)
    theta = torch.randn(8, 6, generator=gen, dtype=torch.float64, requires_grad=True)  # 8 categoricals
    ref_logp = torch.log_softmax(torch.randn(8, 6, generator=gen, dtype=torch.float64), -1)
    reverse = _grad(lambda lp: (lp.exp() * (lp - ref_logp)).sum(), theta)  # grad KL(pi || ref)
    forward = _grad(lambda lp: (ref_logp.exp() * (ref_logp - lp)).sum(), theta)  # grad KL(ref || pi)
    g1, g2, g3 = (_expected_grad(f, theta, ref_logp) for f in (kl_k1, kl_k2, kl_k3))
    assert g1.abs().max().item() < 1e-12  # k1 in the loss: zero expected gradient
    torch.testing.assert_close(g2, reverse, atol=1e-6, rtol=0)  # k2: reverse KL
    torch.testing.assert_close(g3, forward, atol=1e-6, rtol=0)  # k3: forward KL
    assert (g3 - reverse).abs().max().item() > 0.05  # ... and the two directions really differ here


# ---------------------------------------------------------------- (b') gradients over sequences
def _two_token_model(theta1, theta2, ref1, ref2):
    """All V*V sequences of a two-token model: per-token log-probs (V*V, 2) and ref (V*V, 2)."""
    V = theta1.shape[0]
    lp1, lp2 = torch.log_softmax(theta1, -1), torch.log_softmax(theta2, -1)  # (V,), (V, V)
    y1 = torch.arange(V).repeat_interleave(V)
    y2 = torch.arange(V).repeat(V)
    logp = torch.stack([lp1[y1], lp2[y1, y2]], -1)
    ref = torch.stack([ref1[y1], ref2[y1, y2]], -1)
    return logp, ref


def test_sequence_gradients_per_token_vs_sequence_level():
    """Per-token estimators are differentiated with their prefix held fixed. Found here:
    - sum_t k2_t in the loss does NOT give grad KL_seq(pi || ref); 0.5 * (sum_t log r_t)^2 does;
    - sum_t k2_t gives the gradient of sum_t E_{prefix}[KL_t] with the prefix distribution frozen;
    - k1 summed and placed in the reward (REINFORCE: k1_seq.detach() * grad log P) gives grad KL_seq.
    """
    V = 4
    gen = torch.Generator().manual_seed(3)
    theta1 = torch.randn(V, generator=gen, dtype=torch.float64, requires_grad=True)
    theta2 = torch.randn(V, V, generator=gen, dtype=torch.float64, requires_grad=True)
    ref1 = torch.log_softmax(torch.randn(V, generator=gen, dtype=torch.float64), -1)
    ref2 = torch.log_softmax(torch.randn(V, V, generator=gen, dtype=torch.float64), -1)
    params = (theta1, theta2)

    def grads(objective):
        logp, ref = _two_token_model(theta1, theta2, ref1, ref2)
        return torch.cat([g.flatten() for g in torch.autograd.grad(objective(logp, ref), params)])

    def weight(logp):  # P(y1, y2), detached: the sampling distribution
        return logp.sum(-1).exp().detach()

    exact = grads(lambda lp, rf: (lp.sum(-1).exp() * (lp.sum(-1) - rf.sum(-1))).sum())  # grad KL_seq
    per_token_k2 = grads(lambda lp, rf: (weight(lp) * kl_k2(lp, rf).sum(-1)).sum())
    seq_k2 = grads(lambda lp, rf: (weight(lp) * kl_k2(lp.sum(-1), rf.sum(-1))).sum())
    k1_in_reward = grads(lambda lp, rf: (weight(lp) * kl_k1(lp, rf).sum(-1).detach() * lp.sum(-1)).sum())

    def frozen_prefix_kl(lp, rf):  # KL of token 1 + E_{y1 ~ pi detached}[KL of token 2 | y1]
        lp1, lp2 = torch.log_softmax(theta1, -1), torch.log_softmax(theta2, -1)
        kl1 = (lp1.exp() * (lp1 - ref1)).sum()
        kl2 = (lp2.exp() * (lp2 - ref2)).sum(-1)  # (V,)
        return kl1 + (lp1.exp().detach() * kl2).sum() + 0 * lp.sum()

    torch.testing.assert_close(seq_k2, exact, atol=1e-10, rtol=0)
    torch.testing.assert_close(k1_in_reward, exact, atol=1e-10, rtol=0)
    torch.testing.assert_close(per_token_k2, grads(frozen_prefix_kl), atol=1e-10, rtol=0)
    # What per-token k2 misses is the prefix's score-function term sum_y1 grad pi(y1) * KL_2(y1):
    def prefix_term(lp, rf):
        lp1, lp2 = torch.log_softmax(theta1, -1), torch.log_softmax(theta2, -1)
        kl2 = (lp2.exp() * (lp2 - ref2)).sum(-1).detach()  # (V,) KL of token 2 given y1
        return (lp1.exp() * kl2).sum() + 0 * lp.sum()

    torch.testing.assert_close(per_token_k2 + grads(prefix_term), exact, atol=1e-10, rtol=0)
    assert (per_token_k2 - exact).abs().max().item() > 1e-3  # measured 7.1e-3 (gradient norm ~0.5)


# ---------------------------------------------------------------- best-of-n
def test_best_of_n_bound_closed_form():
    assert best_of_n_kl_bound(1) == 0.0
    assert best_of_n_kl_bound(2) == pytest.approx(0.193147, abs=1e-6)  # log 2 - 1/2
    assert best_of_n_kl_bound(4) == pytest.approx(0.636294, abs=1e-6)  # log 4 - 3/4
    assert best_of_n_kl_bound(16) == pytest.approx(math.log(16) - 15 / 16, abs=1e-15)
    for bad in (0, -3, 2.0, True):
        with pytest.raises(ValueError, match="n >= 1"):
            best_of_n_kl_bound(bad)


def _best_of_n_exact(p, n):
    """pi_bon(y_i) = F_i^n - F_{i-1}^n for outcomes sorted by (distinct) reward, F the CDF."""
    F = torch.cumsum(p, 0)
    return F**n - torch.cat([F.new_zeros(1), F[:-1]]) ** n


def test_best_of_n_monte_carlo_matches_enumeration_and_stays_below_bound():
    p = torch.tensor([0.3, 0.05, 0.25, 0.1, 0.2, 0.1], dtype=torch.float64)
    reward = torch.tensor([2.0, 5.0, 0.0, 1.0, 4.0, 3.0], dtype=torch.float64)  # distinct
    n, M = 4, 200_000
    gen = torch.Generator().manual_seed(11)
    draws = torch.multinomial(p, M * n, replacement=True, generator=gen).view(M, n)  # (M, n)
    chosen = draws.gather(1, reward[draws].argmax(1, keepdim=True)).squeeze(1)  # (M,) best of n
    freq = torch.bincount(chosen, minlength=6).double() / M
    order = torch.argsort(reward)
    q = torch.empty_like(p)
    q[order] = _best_of_n_exact(p[order], n)  # exact best-of-n distribution
    se = (q * (1 - q) / M).sqrt()
    assert ((freq - q).abs() < 5 * se + 1e-12).all(), (freq, q)
    kl_exact = (q * (q / p).log()).sum().item()
    log_ratio = (q / p).log()
    kl_se = math.sqrt(((q * log_ratio**2).sum() - kl_exact**2).item() / M)
    kl_mc = (freq * (freq / p).log()).sum().item()  # plug-in KL of the sampled selection
    assert abs(kl_mc - kl_exact) < 5 * kl_se + 6 / M  # 6/M bounds the plug-in bias (K/M)
    # Not equal to the bound: strictly below it for a categorical (Beirami et al. 2024).
    bound = best_of_n_kl_bound(n)
    assert kl_exact < bound - 0.02  # measured: 0.6021 vs 0.6363
    assert kl_mc < bound - 0.02


def test_best_of_n_kl_approaches_bound_as_atoms_vanish():
    for n in (2, 4, 16):
        gaps = []
        for K in (10, 100, 1000):
            p = torch.full((K,), 1.0 / K, dtype=torch.float64)
            q = _best_of_n_exact(p, n)
            gaps.append(best_of_n_kl_bound(n) - (q * (q / p).log()).sum().item())
        assert all(g > 0 for g in gaps) and gaps[0] > gaps[1] > gaps[2]
        assert gaps[2] < 2e-5  # measured: 5.7e-9 (n=2) ... 1.1e-5 (n=16) at K=1000
