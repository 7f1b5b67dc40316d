"""KL coefficient controllers for the KL-in-reward penalty of PPO.

Ziegler et al. (2019), "Fine-Tuning Language Models from Human Preferences": to hold the KL near
a target ``KL_target`` the coefficient follows a proportional controller,

    e_t = clip(KL_t / KL_target - 1, -0.2, 0.2)
    beta_{t+1} = beta_t * (1 + K_beta * e_t)

The paper quotes a constant ``K_beta``; its code (openai/lm-human-preferences, and TRL's PPO trainer
after it) uses ``K_beta = n_steps / horizon``, ``n_steps`` being how many samples the measured
``KL_t`` covers and ``horizon`` (10,000 there) how fast beta reacts. We follow the code.
:class:`FixedKLController` keeps beta constant.
Both expose ``kl_coef`` and ``state_dict``/``load_state_dict`` so a resumed run continues with the
coefficient it stopped at. Pure Python: no torch needed (scalars in, scalars out).
"""

from __future__ import annotations

import math


def _check_finite(name: str, x: float) -> float:
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"{name} must be finite, got {x}")
    return x


class FixedKLController:
    """A constant KL coefficient; ``update`` is a no-op kept for a common interface."""

    kind = "fixed"

    def __init__(self, kl_coef: float):
        self.kl_coef = _check_finite("kl_coef", kl_coef)
        if self.kl_coef < 0:
            raise ValueError(f"kl_coef must be >= 0, got {kl_coef}")

    def update(self, current_kl: float, n_steps: int) -> float:
        return self.kl_coef

    def state_dict(self) -> dict:
        return {"kind": self.kind, "kl_coef": self.kl_coef}

    def load_state_dict(self, state: dict) -> None:
        if state.get("kind") != self.kind:
            raise ValueError(f"KL controller state of kind {state.get('kind')!r} cannot load into a {self.kind!r} controller")
        self.kl_coef = float(state["kl_coef"])


class AdaptiveKLController:
    """Ziegler et al.'s proportional controller (module docstring).

    Example (target 6, horizon 10,000, kl_coef 0.1): a measured KL of 12 over 256 samples clips the
    error to 0.2, so kl_coef becomes 0.1 * (1 + 0.2 * 256 / 10000) = 0.100512; a KL of 5.4 gives
    error -0.1 and kl_coef * (1 - 0.1 * 256 / 10000) = kl_coef * 0.99744.
    """

    kind = "adaptive"

    def __init__(self, init_kl_coef: float, target: float, horizon: float):
        self.kl_coef = _check_finite("init_kl_coef", init_kl_coef)
        self.target = _check_finite("target", target)
        self.horizon = _check_finite("horizon", horizon)
        if self.kl_coef < 0 or self.target <= 0 or self.horizon <= 0:
            raise ValueError(f"need init_kl_coef >= 0, target > 0 and horizon > 0; got {init_kl_coef}, "
                             f"{target}, {horizon}")

    def update(self, current_kl: float, n_steps: int) -> float:
        """Move the coefficient after measuring ``current_kl`` over ``n_steps``; returns the new one."""
        current_kl = _check_finite("current_kl", current_kl)
        if n_steps < 0:
            raise ValueError(f"n_steps must be >= 0, got {n_steps}")
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.kl_coef *= 1.0 + error * n_steps / self.horizon
        return self.kl_coef

    def state_dict(self) -> dict:
        return {"kind": self.kind, "kl_coef": self.kl_coef, "target": self.target, "horizon": self.horizon}

    def load_state_dict(self, state: dict) -> None:
        if state.get("kind") != self.kind:
            raise ValueError(f"KL controller state of kind {state.get('kind')!r} cannot load into a {self.kind!r} controller")
        self.kl_coef, self.target, self.horizon = (float(state[k]) for k in ("kl_coef", "target", "horizon"))
