"""Small learnable preference data sets shared by the trainer tests."""

from __future__ import annotations

import random

from rlhfkit.schema import PreferencePair

COLOURS = ["red", "blue", "green", "pink", "gold", "grey", "teal", "plum"]


def colour_pairs(n: int = 16) -> list[PreferencePair]:
    """Always prefer the answer that repeats the colour in the prompt; chat and plain prompts."""
    out = []
    for i in range(n):
        c, other = COLOURS[i % 8], COLOURS[(i * 3 + 1) % 8 if (i * 3 + 1) % 8 != i % 8 else (i + 1) % 8]
        prompt = f"Colour {i}: {c}?" if i % 2 else [{"role": "user", "content": f"Colour {i}: {c}?"}]
        out.append(PreferencePair(prompt=prompt, chosen=f" {c} it is", rejected=f" {other}, surely"))
    return out


def polite_pairs(n: int, seed: int = 0) -> list[PreferencePair]:
    """Chosen answers are polite, rejected ones rude; HH-style prompts vary in length; weights vary."""
    rng = random.Random(seed)
    words = ["cat", "tree", "bread", "car", "sun", "rain", "code", "tea"]
    polite = [" Sure, happy to help.", " Yes, here it is.", " Of course!"]
    rude = [" No. Go away", " shut up!!", " Not my problem"]
    out = []
    for i in range(n):
        q = " ".join(rng.choice(words) for _ in range(rng.randint(1, 12)))
        out.append(PreferencePair(prompt=f"\n\nHuman: {q}?\n\nAssistant:", chosen=rng.choice(polite),
                                  rejected=rng.choice(rude), weight=rng.choice([0.5, 1.0, 2.0])))
    return out


def lowercase_share(prompts, completions, **metadata) -> list[float]:
    """A toy reward for online RL on a random byte-level model: the share of a completion's
    characters that are lowercase ASCII letters (about 0.1 for uniform random bytes)."""
    return [sum("a" <= ch <= "z" for ch in c) / max(1, len(c)) for c in completions]


def polite_rankings(n: int, seed: int = 0) -> list:
    """K-wise rankings (K = 2, 3 or 4) with ties: polite answers beat neutral ones beat rude ones,
    answers of one kind are tied; prompts vary in length, weights vary."""
    from rlhfkit.data.reward_labels import RankedResponses

    rng = random.Random(seed)
    words = ["cat", "tree", "bread", "car", "sun", "rain", "code", "tea"]
    kinds = {0: [" Sure, happy to help.", " Of course!"], 1: [" Maybe.", " Hmm, ok"], 2: [" No. Go away", " shut up!!"]}
    out = []
    for _ in range(n):
        q = " ".join(rng.choice(words) for _ in range(rng.randint(1, 10)))
        k = rng.choice([2, 3, 4])
        levels = [rng.randrange(3) for _ in range(k)]
        if len(set(levels)) == 1:  # at least two tiers
            levels[0] = (levels[0] + 1) % 3
        texts = tuple(rng.choice(kinds[lv]) + " " * i for i, lv in enumerate(levels))  # distinct texts
        tiers = tuple(tuple(i for i in range(k) if levels[i] == lv) for lv in sorted(set(levels)))
        out.append(RankedResponses(f"\n\nHuman: {q}?\n\nAssistant:", texts, tiers, rng.choice([0.5, 1.0, 2.0])))
    return out


def count_x(text: str) -> float:
    """The gold scorer of the counting task: how many times the letter x occurs."""
    return float(text.count("x"))


def counting_responses(n: int, seed: int = 0, length: int = 8) -> list[str]:
    """Responses of ``length`` letters from {x, o}, so the gold (``count_x``) is learnable as a share."""
    rng = random.Random(seed)
    return ["".join(rng.choice("xo") for _ in range(length)) for _ in range(n)]
