"""The gold rules of the simulated critics (``rlhfkit.feedback.simulate.length_rule`` and
``final_number_rule``) as reward functions, so ``rlhfkit ilf --scorer`` and the benchmarks can
select and score with exactly the rule the critiques came from.

The feedback layer may not import this one (it sits beside the ML stack), so the two formulas
are written twice; ``tests/trainers/test_ilf.py`` checks that they agree on every example.
"""

from __future__ import annotations

import re
from typing import Sequence

FINAL_ANSWER = re.compile(r"the answer is\s*(-?\d[\d,]*(?:\.\d+)?)\.?\s*$", re.IGNORECASE)


def at_most_words(prompts: Sequence, completions: Sequence[str], *, max_words: int = 20, **metadata) -> list[float]:
    """1 for at most ``max_words`` words, else max_words / words (0.5 at twice the limit); an
    empty completion is 0 (it answers nothing)."""
    if max_words < 1:
        raise ValueError(f"at_most_words: max_words must be >= 1, got {max_words}")
    out = []
    for c in completions:
        n = len(str(c).split())
        out.append(0.0 if n == 0 else 1.0 if n <= max_words else max_words / n)
    return out


def final_answer(prompts: Sequence, completions: Sequence[str], **metadata) -> list[float]:
    """1 when the completion ends with "The answer is N." (N a number), else 0."""
    return [1.0 if FINAL_ANSWER.search(str(c).strip()) else 0.0 for c in completions]
