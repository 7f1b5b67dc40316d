"""Reward-model ensembles as an active-selection ranker for the annotation server.

An item's informativeness is how much the ensemble members disagree about its responses: for
every pair (i, j) of the item's K responses, the members' reward margins r_i - r_j are
computed, and their standard deviation over members is the pair's disagreement (the same
quantity ``ensemble_summary`` reports). The item's score is the mean over its K(K-1)/2 pairs,
so items where the members cannot agree which answer is better are labelled first.

A ranker directory is either one reward model with several heads (``rlhfkit reward train
--n-heads N``) or a folder whose sub-folders are separately trained members.
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path
from typing import Callable, Sequence

from rlhfkit.schema import PreferenceItem, PreferencePair


def load_members(path: str | Path, dtype: str = "fp32") -> list:
    from rlhfkit.models.reward_model import RewardModel

    path = Path(path)
    if (path / "config.json").exists():
        return [RewardModel.load(path, dtype=dtype)]
    members = sorted(p for p in path.iterdir() if (p / "config.json").exists())
    if not members:
        raise ValueError(f"{path} is neither a reward model folder nor a folder of reward-model members")
    return [RewardModel.load(p, dtype=dtype) for p in members]


def item_pairs(item: PreferenceItem) -> list[PreferencePair]:
    """Every unordered pair of the item's responses (i < j) as (chosen=i, rejected=j)."""
    return [PreferencePair(prompt=item.prompt, chosen=item.responses[i].text, rejected=item.responses[j].text)
            for i, j in combinations(range(len(item.responses)), 2)]


def pair_disagreement(members: list, pairs: list[PreferencePair], max_length: int = 512,
                      batch_size: int = 16):
    """Disagreement (P,) of the members' margins over pairs; needs >= 2 heads in total."""
    import torch

    from rlhfkit.models.reward_model import ensemble_summary, score_pairs
    from rlhfkit.packing import tokenize_reward_pairs

    chosen, rejected = [], []
    for member in members:
        tokenized = tokenize_reward_pairs(member.tokenizer, pairs, max_length)
        c, r = score_pairs(member, tokenized, batch_size=batch_size)  # (P, H) each
        chosen.append(c)
        rejected.append(r)
    chosen, rejected = torch.cat(chosen, dim=1), torch.cat(rejected, dim=1)  # (P, N)
    if chosen.shape[1] < 2:
        raise ValueError("active selection needs an ensemble: train with --n-heads >= 2 or pass "
                         "a folder of several reward models")
    return ensemble_summary(chosen, rejected)["disagreement"]


def load_disagreement_ranker(path: str | Path, max_length: int = 512) -> Callable[[Sequence[PreferenceItem]], list[float]]:
    """The ranker that ``rlhfkit feedback rank --ranker PATH`` and ``serve --ranker`` call."""
    members = load_members(path)

    def rank(items: Sequence[PreferenceItem]) -> list[float]:
        pairs, owner = [], []
        for n, item in enumerate(items):
            for pair in item_pairs(item):
                pairs.append(pair)
                owner.append(n)
        if not pairs:
            return [0.0] * len(items)
        disagreement = pair_disagreement(members, pairs, max_length).tolist()
        totals, counts = [0.0] * len(items), [0] * len(items)
        for n, d in zip(owner, disagreement):
            totals[n] += d
            counts[n] += 1
        return [t / c if c else 0.0 for t, c in zip(totals, counts)]

    return rank
