"""KL estimators for online RL, and the analytic KL of best-of-n selection.

Schulman (2020), "Approximating KL divergence" (http://joschu.net/blog/kl-approx.html). For a token
``y`` sampled from the policy ``pi`` and a reference ``ref``, write the log-ratio
``log r = log ref(y) - log pi(y)`` (so ``r = ref(y) / pi(y)``). The exact target is
``KL(pi || ref) = E_{y~pi}[log pi(y) - log ref(y)]``. Three single-sample estimators:

    k1 = -log r                  unbiased, high variance, negative for some samples
    k2 = (log r)^2 / 2           biased (E[k2] != KL), >= 0, low variance; second-order accurate
    k3 = (r - 1) - log r         unbiased (E_pi[r] = 1), >= 0 (log x <= x - 1), low variance

Used *in the loss* (differentiated with respect to the policy, the sample held fixed, as GRPO does
with ``beta * k3``), the expected gradients over ``y ~ pi`` are -- derived here and checked to 1e-6
by exact enumeration in ``tests/losses/test_kl.py``:

    grad k1 = grad log pi                 -> E = sum_y grad pi(y) = 0: no signal at all; k1 only
                                             acts through sampling (i.e. placed in the reward).
    grad k2 = (log pi - log ref) grad log pi
                                          -> E = grad KL(pi || ref): the reverse KL we want.
    grad k3 = (1 - ref/pi) grad log pi    -> E = sum_y (pi - ref) grad log pi = -sum_y ref grad log pi
                                             = grad KL(ref || pi): the FORWARD KL, not KL(pi || ref).

So k3 is the right *value* estimator of KL(pi || ref) but, in the loss, it optimises the other
direction (Tang & Munos 2025, "On a few pitfalls in KL divergence gradient estimation for RL").
For sequences these are per-token statements: each token's term is differentiated with its prefix
held fixed, so a per-token sum of k2 does *not* give the gradient of the sequence KL (it misses the
prefix's score-function term); ``0.5 * (sum_t log r_t)^2`` over the whole sequence does, and so
does k1 summed over the sequence and placed in the reward (the policy gradient
``E[k1_seq grad log pi(y)]`` is exactly ``grad KL_seq(pi || ref)``). The tests check all three on
a two-token toy model by enumeration.

All estimator functions take per-token log-probs ``logp`` and ``ref_logp`` of tokens sampled from
the policy, any shape (``(B, T)`` or ``(N,)``), and return the per-token estimate of the same shape.
They do no masking; reduce with :func:`sequence_kl`. This module imports only torch.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

KLEstimator = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _check_pair(logp: torch.Tensor, ref_logp: torch.Tensor) -> None:
    if logp.shape != ref_logp.shape:
        raise ValueError(f"logp shape {tuple(logp.shape)} != ref_logp shape {tuple(ref_logp.shape)}")


def kl_k1(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """k1 = log pi(y) - log ref(y).

    Estimates KL(pi || ref) without bias; variance is high and single samples can be negative.
    In the loss its expected gradient is zero (``E_pi[grad log pi] = 0``): it regularises only when
    placed in the reward, where the policy gradient carries it. Shapes: any, output = input shape.
    """
    _check_pair(logp, ref_logp)
    return logp - ref_logp


def kl_k2(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """k2 = (log ref(y) - log pi(y))^2 / 2.

    Biased: ``E_pi[k2]`` is not KL(pi || ref) (it agrees to second order as ref -> pi; it is an
    f-divergence with f(r) = (log r)^2 / 2). Always >= 0, low variance. In the loss its expected
    gradient is exactly ``grad KL(pi || ref)`` (per token, prefix fixed). Shapes: any.
    """
    _check_pair(logp, ref_logp)
    return 0.5 * (ref_logp - logp) ** 2


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """k3 = (r - 1) - log r with r = ref(y) / pi(y)  (computed as expm1(log r) - log r).

    Unbiased for KL(pi || ref) (because ``E_pi[r] = 1``), always >= 0, low variance when ref is
    close to pi; used in the GRPO objective (Shao et al. 2024, DeepSeekMath). In the loss its
    expected gradient is ``grad KL(ref || pi)``, the forward KL. ``r`` is exponentiated: a token the policy sampled at a
    tiny probability but the reference likes makes it large. Shapes: any.
    """
    _check_pair(logp, ref_logp)
    log_ratio = ref_logp - logp
    return torch.expm1(log_ratio) - log_ratio


KL_ESTIMATORS: dict[str, KLEstimator] = {"k1": kl_k1, "k2": kl_k2, "k3": kl_k3}


def kl_estimator(name: str) -> KLEstimator:
    """The estimator called ``name`` ("k1", "k2" or "k3")."""
    try:
        return KL_ESTIMATORS[name]
    except KeyError:
        raise ValueError(f"unknown KL estimator {name!r}; expected one of {sorted(KL_ESTIMATORS)}") from None


def sequence_kl(per_token: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum of a per-token KL estimate over the real tokens of each sequence.

    ``per_token`` and ``mask`` are ``(B, T)`` (mask 1 on completion tokens, 0 on padding);
    returns ``(B,)``. Summing is right for KL over sequences: log-probs of a sequence add up.
    """
    if per_token.shape != mask.shape:
        raise ValueError(f"per_token shape {tuple(per_token.shape)} != mask shape {tuple(mask.shape)}")
    if per_token.dim() != 2:
        raise ValueError(f"per_token must be (B, T), got shape {tuple(per_token.shape)}")
    return (per_token * mask.to(per_token.dtype)).sum(-1)


def best_of_n_kl_bound(n: int) -> float:
    """``log n - (n - 1) / n``: the KL(pi_bon || ref) usually quoted for best-of-n sampling
    (Stiennon et al. 2020, "Learning to summarize from human feedback").

    Beirami et al. (2024), "Theoretical guarantees on the best-of-n alignment policy", show this
    is an *upper bound*; it is attained when the reward has no ties with positive probability
    (a continuous reference distribution). For a finite categorical ref with distinct rewards the
    best-of-n policy is ``pi_bon(y_i) = F_i^n - F_{i-1}^n`` (``F`` the reference CDF in reward
    order) and its KL is strictly below the bound, approaching it as every ``ref(y)`` -> 0.
    Values: n=1 -> 0, n=2 -> log 2 - 1/2 = 0.193147, n=4 -> 0.636294.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"best-of-n needs an integer n >= 1, got {n!r}")
    return math.log(n) - (n - 1) / n
