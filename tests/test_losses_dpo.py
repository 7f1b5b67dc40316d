"""DPO-family losses: closed forms from the docstrings, and parity with TRL 1.16 (same log-probs
in -> same loss and same gradients out), calling TRL's own loss code on a stand-in model whose
"forward" returns the given log-probs."""

import math
from types import SimpleNamespace

import pytest
import torch

from rlhfkit.losses.dpo import cdpo_loss, dpo_loss, ipo_loss, robust_dpo_loss, simpo_loss
from rlhfkit.losses.kto import kto_loss


def _t(*xs):
    return torch.tensor(xs, dtype=torch.float64)


# ---------------------------------------------------------------- closed forms (docstrings)
def test_dpo_closed_form():
    loss, m = dpo_loss(_t(0.0), _t(0.0), _t(0.0), _t(0.0), beta=0.1)
    assert loss.item() == pytest.approx(math.log(2), abs=1e-12)
    loss, m = dpo_loss(_t(-5.0), _t(-20.0), _t(-10.0), _t(-15.0), beta=0.1)  # h = 5 - (-5) = 10
    assert loss.item() == pytest.approx(math.log1p(math.exp(-1)), abs=1e-12)
    assert m["rewards/chosen"].item() == pytest.approx(0.5)
    assert m["rewards/rejected"].item() == pytest.approx(-0.5)
    assert m["rewards/margins"].item() == pytest.approx(1.0)
    assert m["rewards/accuracy"].item() == 1.0
    assert not any(v.requires_grad for v in m.values())


def test_cdpo_and_robust_closed_form():
    args = (_t(-5.0), _t(-20.0), _t(-10.0), _t(-15.0))
    a, b = math.log1p(math.exp(-1)), math.log1p(math.exp(1))
    assert cdpo_loss(*args, beta=0.1, label_smoothing=0.25)[0].item() == pytest.approx(0.75 * a + 0.25 * b, abs=1e-12)
    assert cdpo_loss(*args, beta=0.1, label_smoothing=0.25)[0].item() == pytest.approx(0.563262, abs=1e-6)
    assert robust_dpo_loss(*args, beta=0.1, label_smoothing=0.25)[0].item() == pytest.approx(-0.186737, abs=2e-6)
    # eps = 0 reduces both to DPO
    assert cdpo_loss(*args, label_smoothing=0.0)[0].item() == pytest.approx(dpo_loss(*args)[0].item(), abs=1e-15)
    with pytest.raises(ValueError, match="label_smoothing"):
        robust_dpo_loss(*args, label_smoothing=0.5)


def test_ipo_closed_form():
    zero = _t(0.0)
    assert ipo_loss(zero, zero, zero, zero, _t(3), _t(4), beta=0.1)[0].item() == pytest.approx(25.0)
    # chosen log-ratio 30 over 3 tokens = 10, rejected 20 over 4 tokens = 5: h_avg = 5 = 1/(2*0.1)
    assert ipo_loss(_t(30.0), _t(20.0), zero, zero, _t(3), _t(4), beta=0.1)[0].item() == pytest.approx(0.0, abs=1e-12)


def test_simpo_closed_form():
    loss, m = simpo_loss(_t(-6.0), _t(-12.0), _t(3), _t(6), beta=2.0, gamma=0.5)  # both average -2
    assert loss.item() == pytest.approx(math.log1p(math.exp(0.5)), abs=1e-12)
    assert loss.item() == pytest.approx(0.974077, abs=1e-6)
    assert m["rewards/chosen"].item() == pytest.approx(-4.0)


def test_kto_closed_form():
    zero = _t(0.0, 0.0)
    loss, m = kto_loss(_t(10.0, -10.0), zero, torch.tensor([True, False]), zero, zero, beta=0.1)
    assert loss.item() == pytest.approx(1 - 1 / (1 + math.exp(-1)), abs=1e-12)
    assert m["kl"].item() == 0.0 and m["rewards/accuracy"].item() == 1.0


# ---------------------------------------------------------------- parity with TRL
B, T = 5, 9


def _batch(seed):
    g = torch.Generator().manual_seed(seed)
    logps = [-(torch.rand(B, generator=g, dtype=torch.float64) * 40 + 1) for _ in range(4)]
    c_len = torch.randint(1, T - 1, (B,), generator=g)
    r_len = torch.randint(1, T - 1, (B,), generator=g)
    return logps, c_len, r_len


class _FakeLM:
    """Stands in for the model in TRL's loss code: returns per-token log-probs whose row sums are
    the given sequence log-probs (all mass on the first position, zeros elsewhere)."""

    def __init__(self, seq_logps):
        self.seq_logps = seq_logps
        self.training = True

    def __call__(self, input_ids, **kw):
        n, t = input_ids.shape
        first = torch.zeros(n, t - 1, dtype=torch.float64)
        first[:, 0] = 1.0
        log_probs = self.seq_logps[:, None] * first
        zeros = torch.zeros(n, t - 1, dtype=torch.float64)
        return SimpleNamespace(log_probs=log_probs, entropy=zeros, mean_logits=zeros, is_top1=zeros.bool())


def _accel():
    return SimpleNamespace(
        device=torch.device("cpu"), gather_for_metrics=lambda x: x, gather=lambda x: x, unwrap_model=lambda m: m
    )


def _completion_mask(lengths):
    # prompt token at position 0, then `length` completion tokens, then padding
    mask = torch.zeros(len(lengths), T, dtype=torch.long)
    for i, n in enumerate(lengths.tolist()):
        mask[i, 1 : 1 + n] = 1
    return mask


def _trl_dpo(loss_type, pc, pr, rc, rr, c_len, r_len, beta, label_smoothing=0.0):
    from collections import defaultdict

    pytest.importorskip("trl")  # only the parity tests need TRL

    from trl.trainer.dpo_trainer import DPOTrainer

    seq = torch.cat([pc, pr])
    model = _FakeLM(seq)
    fake = SimpleNamespace(
        model=model, accelerator=_accel(), aux_loss_enabled=False, ld_alpha=None, precompute_ref_logps=True,
        f_divergence_type="reverse_kl", loss_types=[loss_type], loss_weights=[1.0], beta=beta,
        label_smoothing=label_smoothing, use_weighting=False, _metrics={"train": defaultdict(list)},
        _total_train_tokens=0, _tp_size=1, args=SimpleNamespace(),
    )
    cm = _completion_mask(torch.cat([c_len, r_len]))
    inputs = {
        "input_ids": torch.zeros(2 * B, T, dtype=torch.long), "attention_mask": torch.ones(2 * B, T, dtype=torch.long),
        "completion_mask": cm, "ref_chosen_logps": rc, "ref_rejected_logps": rr,
    }
    return DPOTrainer._compute_loss(fake, model, inputs, False), fake._metrics["train"]


def _leaves(logps):
    return [x.clone().requires_grad_(True) for x in logps]


def _grads(loss, leaves):
    return torch.autograd.grad(loss, leaves)


OURS = {
    "sigmoid": lambda pc, pr, rc, rr, cl, rl, beta, ls: dpo_loss(pc, pr, rc, rr, beta=beta),
    "robust": lambda pc, pr, rc, rr, cl, rl, beta, ls: robust_dpo_loss(pc, pr, rc, rr, beta=beta, label_smoothing=ls),
    "ipo": lambda pc, pr, rc, rr, cl, rl, beta, ls: ipo_loss(pc, pr, rc, rr, cl, rl, beta=beta),
}


@pytest.mark.parametrize("loss_type", sorted(OURS))
@pytest.mark.parametrize("beta,label_smoothing,seed", [(0.1, 0.0, 0), (0.5, 0.2, 1), (0.05, 0.1, 2)])
def test_parity_with_trl_dpo_trainer(loss_type, beta, label_smoothing, seed):
    logps, c_len, r_len = _batch(seed)
    ours_in, trl_in = _leaves(logps), _leaves(logps)
    ours, m = OURS[loss_type](*ours_in, c_len, r_len, beta, label_smoothing)
    theirs, trl_m = _trl_dpo(loss_type, *trl_in, c_len, r_len, beta, label_smoothing)
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-6, rel=1e-9)
    for g_ours, g_trl in zip(_grads(ours, ours_in[:2]), _grads(theirs, trl_in[:2])):
        torch.testing.assert_close(g_ours, g_trl, atol=1e-6, rtol=0)
    assert m["rewards/margins"].item() == pytest.approx(trl_m["rewards/margins"][-1], abs=1e-9)
    assert m["rewards/accuracy"].item() == pytest.approx(trl_m["rewards/accuracies"][-1], abs=1e-12)


def _trl_cpo(loss_type, pc, pr, beta, label_smoothing, gamma=0.5):
    pytest.importorskip("trl")  # only the parity tests need TRL
    from trl.experimental.cpo.cpo_trainer import CPOTrainer

    fake = SimpleNamespace(alpha=0.0, accelerator=_accel(), loss_type=loss_type, simpo_gamma=gamma, beta=beta,
                           label_smoothing=label_smoothing)
    losses, chosen_rewards, rejected_rewards = CPOTrainer.cpo_loss(fake, pc, pr)
    return losses.mean(), chosen_rewards, rejected_rewards


@pytest.mark.parametrize("beta,gamma,label_smoothing,seed", [(2.0, 0.5, 0.0, 0), (2.5, 1.4, 0.1, 1)])
def test_simpo_parity_with_trl_cpo(beta, gamma, label_smoothing, seed):
    logps, c_len, r_len = _batch(seed)
    ours_in, trl_in = _leaves(logps[:2]), _leaves(logps[:2])
    ours, m = simpo_loss(*ours_in, c_len, r_len, beta=beta, gamma=gamma, label_smoothing=label_smoothing)
    # TRL's CPO trainer averages log-probs over completion tokens before its loss (average_log_prob=True)
    theirs, trl_c, trl_r = _trl_cpo("simpo", trl_in[0] / c_len, trl_in[1] / r_len, beta, label_smoothing, gamma)
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-6, rel=1e-9)
    for g_ours, g_trl in zip(_grads(ours, ours_in), _grads(theirs, trl_in)):
        torch.testing.assert_close(g_ours, g_trl, atol=1e-6, rtol=0)
    assert m["rewards/chosen"].item() == pytest.approx(trl_c.mean().item(), abs=1e-9)


@pytest.mark.parametrize("beta,label_smoothing,seed", [(0.1, 0.1, 0), (0.3, 0.25, 3)])
def test_cdpo_parity_with_trl_label_smoothing(beta, label_smoothing, seed):
    """TRL 1.16's DPO "sigmoid" ignores label_smoothing; its label-smoothed sigmoid lives in CPO's
    loss, which is cDPO applied to whatever log-ratios it is given: feed it the policy/ref
    log-ratios."""
    logps, c_len, r_len = _batch(seed)
    ours_in, trl_in = _leaves(logps), _leaves(logps)
    ours, _ = cdpo_loss(*ours_in, beta=beta, label_smoothing=label_smoothing)
    theirs, _, _ = _trl_cpo("sigmoid", trl_in[0] - trl_in[2], trl_in[1] - trl_in[3], beta, label_smoothing)
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-6, rel=1e-9)
    for g_ours, g_trl in zip(_grads(ours, ours_in), _grads(theirs, trl_in)):
        torch.testing.assert_close(g_ours, g_trl, atol=1e-6, rtol=0)


def _trl_kto(policy, ref, labels, policy_kl, ref_kl, beta, wd, wu):
    from collections import defaultdict

    pytest.importorskip("trl")  # only the parity tests need TRL

    from trl.trainer.kto_trainer import KTOTrainer

    n = len(labels)
    model = _FakeLM(policy)

    class _Self(SimpleNamespace):
        def _compute_kl_logps(self, model, batch):
            return policy_kl

    fake = _Self(
        model=model, accelerator=_accel(), aux_loss_enabled=False, precompute_ref_logps=True, calculate_KL=True,
        loss_type="kto", beta=beta, desirable_weight=wd, undesirable_weight=wu,
        _metrics={"train": defaultdict(list)}, _total_train_tokens=0, _tp_size=1,
    )
    inputs = {
        "input_ids": torch.zeros(n, T, dtype=torch.long), "attention_mask": torch.ones(n, T, dtype=torch.long),
        "completion_mask": torch.ones(n, T, dtype=torch.long), "label": labels, "ref_logps": ref, "ref_KL_logps": ref_kl,
    }
    return KTOTrainer._compute_loss(fake, model, inputs, False), fake._metrics["train"]


@pytest.mark.parametrize("beta,wd,wu,seed", [(0.1, 1.0, 1.0, 0), (0.4, 1.33, 0.7, 5)])
def test_kto_parity_with_trl(beta, wd, wu, seed):
    g = torch.Generator().manual_seed(seed)
    n = 7
    vals = [-(torch.rand(n, generator=g, dtype=torch.float64) * 30 + 1) for _ in range(4)]
    labels = torch.tensor([True, False, True, True, False, False, True])
    ours_in, trl_in = _leaves(vals[:1]) + vals[1:], _leaves(vals[:1]) + vals[1:]
    # policy KL logps above ref so z0 > 0 is exercised (clamp not active)
    policy_kl, ref_kl = vals[2] + 0.5, vals[3]
    ours, m = kto_loss(ours_in[0], vals[1], labels, policy_kl, ref_kl, beta=beta, desirable_weight=wd,
                       undesirable_weight=wu)
    theirs, trl_m = _trl_kto(trl_in[0], vals[1], labels, policy_kl, ref_kl, beta, wd, wu)
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-6, rel=1e-9)
    torch.testing.assert_close(_grads(ours, ours_in[:1])[0], _grads(theirs, trl_in[:1])[0], atol=1e-6, rtol=0)
    assert m["kl"].item() == pytest.approx(trl_m["kl"][-1], abs=1e-12)
    assert m["rewards/margins"].item() == pytest.approx(trl_m["rewards/margins"][-1], abs=1e-9)


# ---------------------------------------------------------------- per-pair weights
@pytest.mark.parametrize("fn", [dpo_loss, cdpo_loss, robust_dpo_loss, ipo_loss])
def test_pair_weights_give_the_weighted_mean(fn):
    # pair 1: h = 0 (loss log 2 for DPO); pair 2: h = 10. Weights (1, 3) -> (l1 + 3 l2) / 4.
    args = (_t(0.0, -5.0), _t(0.0, -20.0), _t(0.0, -10.0), _t(0.0, -15.0))
    if fn is ipo_loss:
        args += (_t(1.0, 1.0), _t(1.0, 1.0))  # lengths
    per_pair = [fn(*(a[i : i + 1] for a in args), beta=0.1)[0].item() for i in range(2)]
    weighted, _ = fn(*args, beta=0.1, weights=_t(1.0, 3.0))
    assert weighted.item() == pytest.approx((per_pair[0] + 3 * per_pair[1]) / 4, abs=1e-12)
    assert fn(*args, beta=0.1, weights=_t(1.0, 1.0))[0].item() == pytest.approx(fn(*args, beta=0.1)[0].item(), abs=1e-15)
    if fn is dpo_loss:
        assert per_pair[0] == pytest.approx(math.log(2)) and per_pair[1] == pytest.approx(math.log1p(math.exp(-1)))


def test_simpo_pair_weights_and_bad_weights():
    args = (_t(-2.0, -4.0), _t(-6.0, -1.0), _t(2.0, 2.0), _t(2.0, 2.0))
    per_pair = [simpo_loss(*(a[i : i + 1] for a in args), beta=2.0, gamma=0.5)[0].item() for i in range(2)]
    weighted, _ = simpo_loss(*args, beta=2.0, gamma=0.5, weights=_t(0.0, 2.0))
    assert weighted.item() == pytest.approx(per_pair[1], abs=1e-12)
    with pytest.raises(ValueError, match=">= 0"):
        dpo_loss(*args, weights=_t(-1.0, 1.0))
    with pytest.raises(ValueError, match="sum to zero"):
        dpo_loss(*args, weights=_t(0.0, 0.0))
