"""Best-of-N sampling (Stiennon et al. 2020; Nakano et al. 2021): draw N completions per prompt
and keep the one the reward scores highest. No training: the "policy" is the selection rule.

Its KL to the base policy is bounded analytically by ``log N - (N - 1) / N`` nats (Beirami et
al. 2024 show this is an upper bound, exact only in the limit of a continuous distribution);
``losses.kl.best_of_n_kl_bound`` computes it and every result carries it, so best-of-N points
can sit on the same over-optimisation plot as RL checkpoints (Gao et al. 2022).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from rlhfkit.losses.kl import best_of_n_kl_bound
from rlhfkit.rollout.sampler import SamplingParams


@dataclass
class BestOfN:
    """The chosen completion of each prompt, with all N rewards and the KL bound."""

    completions: list[str]  # (P,) the best of each prompt's N samples
    rewards: list[float]  # (P,) their rewards
    all_rewards: list[list[float]]  # (P, N)
    n: int
    kl_bound: float  # log N - (N-1)/N nats

    @property
    def mean_reward(self) -> float:
        return sum(self.rewards) / len(self.rewards)


def best_of_n(sampler, prompts: Sequence, prompt_ids: list[list[int]], reward_fn: Callable, n: int,
              params: SamplingParams, seed: int = 0, metadata: dict[str, list] | None = None) -> BestOfN:
    """N samples per prompt from ``sampler`` scored by ``reward_fn`` (rewards.base interface);
    ``metadata`` holds per-prompt lists (e.g. ``answer``) repeated to each sample."""
    if n < 1:
        raise ValueError(f"best-of-N needs n >= 1, got {n}")
    batch = sampler.sample(prompt_ids, n, params, seed)
    repeated = [p for p in prompts for _ in range(n)]
    meta = {k: [v for v in values for _ in range(n)] for k, values in (metadata or {}).items()}
    rewards = [float(r) for r in reward_fn(repeated, batch.texts, **meta)]
    chosen, best, table = [], [], []
    for i in range(len(prompt_ids)):
        group = rewards[i * n : (i + 1) * n]
        j = max(range(n), key=lambda k: group[k])  # first of equal maxima
        chosen.append(batch.texts[i * n + j])
        best.append(group[j])
        table.append(group)
    return BestOfN(chosen, best, table, n, best_of_n_kl_bound(n))
