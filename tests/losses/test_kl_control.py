"""KL controllers: hand-computed updates of Ziegler et al.'s proportional controller, the clip at
+-20%, and an exact resume from state_dict (a resumed controller continues bit-for-bit)."""

import json

import pytest

from rlhfkit.losses.kl_control import AdaptiveKLController, FixedKLController


def test_fixed_controller_never_moves():
    c = FixedKLController(0.05)
    assert c.update(100.0, 256) == 0.05 and c.kl_coef == 0.05
    other = FixedKLController(1.0)
    other.load_state_dict(c.state_dict())
    assert other.kl_coef == 0.05
    with pytest.raises(ValueError, match="kl_coef must be >= 0"):
        FixedKLController(-0.1)


def test_adaptive_controller_hand_computed_steps():
    c = AdaptiveKLController(init_kl_coef=0.1, target=6.0, horizon=10_000)
    # KL 12: error 12/6 - 1 = 1 clipped to 0.2 -> 0.1 * (1 + 0.2 * 256/10000) = 0.1 * 1.00512
    assert c.update(12.0, 256) == pytest.approx(0.100512, abs=1e-15)
    # KL 5.4: error -0.1 -> * (1 - 0.1 * 256/10000) = * 0.99744
    assert c.update(5.4, 256) == pytest.approx(0.100512 * 0.99744, abs=1e-15)
    # KL 0: error -1 clipped to -0.2 -> * (1 - 0.2 * 1000/10000) = * 0.98
    assert c.update(0.0, 1000) == pytest.approx(0.100512 * 0.99744 * 0.98, abs=1e-15)
    # KL on target: no change; n_steps 0: no change
    before = c.kl_coef
    assert c.update(6.0, 5000) == before and c.update(50.0, 0) == before


def test_adaptive_controller_exact_resume():
    kls = [3.0, 9.5, 7.2, 0.4, 6.6, 12.0, 5.9, 1.0]
    full = AdaptiveKLController(0.2, target=4.0, horizon=500)
    for kl in kls:
        full.update(kl, 64)
    first = AdaptiveKLController(0.2, target=4.0, horizon=500)
    for kl in kls[:3]:
        first.update(kl, 64)
    saved = json.loads(json.dumps(first.state_dict()))  # through JSON, as a checkpoint stores it
    resumed = AdaptiveKLController(99.0, target=1.0, horizon=1.0)
    resumed.load_state_dict(saved)
    for kl in kls[3:]:
        resumed.update(kl, 64)
    assert resumed.kl_coef == full.kl_coef  # bit-for-bit
    assert resumed.state_dict() == full.state_dict()


def test_controller_errors():
    with pytest.raises(ValueError, match="kind 'fixed' cannot load into a 'adaptive' controller"):
        AdaptiveKLController(0.1, 6.0, 10_000).load_state_dict(FixedKLController(0.1).state_dict())
    with pytest.raises(ValueError, match="target > 0"):
        AdaptiveKLController(0.1, 0.0, 10_000)
    with pytest.raises(ValueError, match="current_kl must be finite"):
        AdaptiveKLController(0.1, 6.0, 10_000).update(float("nan"), 10)
