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
