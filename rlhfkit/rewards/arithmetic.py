"""A verifiable task shipped with rlhfkit: generated arithmetic word problems.

Our own generator (no external data): each template has 2-3 small positive integers and a
one- or two-operation answer, small enough that a 135M-parameter model has a chance. The
wording (names, objects) is cosmetic and drawn from the same seeded generator.

Train / held-out split: a problem's canonical form is (template, numbers). Its split is fixed
by a hash of that form, so the two splits are disjoint by construction: no (template,
numbers) pair, and therefore no problem text, can occur in both, whatever seeds or sizes are
asked for. About ``HELDOUT_PERCENT`` % of all canonical problems are held out.

Each problem is {"id", "prompt", "answer", "template"}; the prompt asks for the final answer
after "####", and ``rules.numeric_exact_match`` scores completions against ``answer``.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

HELDOUT_PERCENT = 20
SPLITS = ("train", "test")
INSTRUCTION = "Solve the problem. End your reply with a line '#### N', where N is the final answer as a number."

NAMES = ["Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana", "Ivan", "Jade", "Kofi", "Lena",
         "Mateo", "Nia", "Omar", "Priya", "Quinn", "Rosa", "Sami", "Tomas"]
ITEMS = ["apple", "pencil", "marble", "sticker", "cookie", "book", "shell", "card", "stamp", "balloon"]
MACHINES = [("printer", "page"), ("baker", "loaf"), ("machine", "toy"), ("farmer", "basket"),
            ("worker", "box")]


@dataclass(frozen=True)
class Template:
    name: str
    ranges: tuple[tuple[int, int], ...]  # inclusive range of each number
    text: Callable[[tuple[int, ...], random.Random], str]
    answer: Callable[[tuple[int, ...]], int]
    valid: Callable[[tuple[int, ...]], bool] = lambda nums: True


def _shopping(n, rng):
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    return (f"{name} buys {n[0]} {item}s at {n[1]} dollars each and a bag for {n[2]} dollars. "
            f"How many dollars does {name} spend in total?")


def _sharing(n, rng):
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    return (f"{name} has {n[0] * n[1]} {item}s and shares them equally among {n[1]} friends. "
            f"How many {item}s does each friend get?")


def _ages(n, rng):
    a, b = rng.sample(NAMES, 2)
    return f"{a} is {n[0]} years old. {b} is {n[1]} years older than {a}. How old will {b} be in {n[2]} years?"


def _rates(n, rng):
    worker, thing = rng.choice(MACHINES)
    return f"A {worker} makes {n[0]} {thing}s every hour. How many {thing}s does the {worker} make in {n[1]} hours?"


def _two_steps(n, rng):
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    return (f"{name} had {n[0]} {item}s, bought {n[1]} more, then gave away {n[2]}. "
            f"How many {item}s does {name} have now?")


def _pages(n, rng):
    name = rng.choice(NAMES)
    return (f"{name} reads {n[0]} pages every day for {n[1]} days and then {n[2]} more pages. "
            f"How many pages does {name} read altogether?")


TEMPLATES = {t.name: t for t in [
    Template("shopping", ((2, 9), (2, 9), (1, 20)), _shopping, lambda n: n[0] * n[1] + n[2]),
    Template("sharing", ((2, 12), (2, 9)), _sharing, lambda n: n[0]),
    Template("ages", ((3, 40), (1, 30), (1, 20)), _ages, lambda n: n[0] + n[1] + n[2]),
    Template("rates", ((2, 15), (2, 9)), _rates, lambda n: n[0] * n[1]),
    Template("two_steps", ((5, 40), (1, 30), (1, 40)), _two_steps, lambda n: n[0] + n[1] - n[2],
             lambda n: n[2] <= n[0] + n[1]),
    Template("pages", ((2, 20), (2, 7), (1, 30)), _pages, lambda n: n[0] * n[1] + n[2]),
]}


def canonical_key(template: str, numbers: tuple[int, ...]) -> str:
    """The canonical form that decides a problem's split and its id."""
    return f"{template}:{','.join(str(x) for x in numbers)}"


def split_of(template: str, numbers: tuple[int, ...]) -> str:
    """"test" for about HELDOUT_PERCENT % of canonical problems (by hash), else "train"."""
    digest = hashlib.sha256(canonical_key(template, numbers).encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") % 100 < HELDOUT_PERCENT else "train"


@functools.lru_cache(maxsize=2)
def _split_forms(split: str) -> dict[str, tuple[tuple[int, ...], ...]]:
    """Every valid (template, numbers) of ``split``, per template, in a fixed order."""
    forms = {}
    for name, template in sorted(TEMPLATES.items()):
        grid = itertools.product(*(range(lo, hi + 1) for lo, hi in template.ranges))
        forms[name] = tuple(n for n in grid if template.valid(n) and split_of(name, n) == split)
    return forms


def count_problems(split: str) -> int:
    """How many distinct problems ``split`` holds."""
    return sum(len(v) for v in _split_forms(split).values())


def generate_problems(split: str, n: int, seed: int = 0) -> list[dict]:
    """``n`` distinct problems of ``split`` ("train" or "test"), the same for the same seed.

    Each problem picks a template uniformly (among those not used up), then the next of that
    template's canonical forms in a seeded shuffle, so a larger ``n`` extends a smaller one.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not 0 <= n <= count_problems(split):
        raise ValueError(f"n must be between 0 and {count_problems(split)} (the {split} problems that exist), got {n}")
    rng = random.Random(f"rlhfkit-arithmetic:{seed}")
    queues = {}
    for name, forms in _split_forms(split).items():
        queue = list(forms)
        rng.shuffle(queue)
        queues[name] = queue
    out: list[dict] = []
    while len(out) < n:
        name = rng.choice(sorted(k for k, q in queues.items() if q))
        numbers = queues[name].pop()
        template = TEMPLATES[name]
        out.append({"id": f"arith-{canonical_key(name, numbers)}",
                    "prompt": f"{template.text(numbers, rng)}\n{INSTRUCTION}",
                    "answer": template.answer(numbers), "template": name})
    return out


def write_problems(path: str | Path, split: str, n: int, seed: int = 0) -> Path:
    """Write ``generate_problems(split, n, seed)`` as a prompts JSONL (one problem a line) that
    ``rlhfkit.rollout.prompts.read_prompts`` reads; the answer stays in the "answer" field."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for problem in generate_problems(split, n, seed):
            fh.write(json.dumps(problem) + "\n")
    return path


def read_answers(path: str | Path) -> dict[str, int]:
    """id -> reference answer from a file written by ``write_problems`` (``read_prompts`` keeps
    only id and prompt, so a trainer looks the answer up here to pass as reward metadata)."""
    answers = {}
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        record = json.loads(line)
        if "id" not in record or "answer" not in record:
            raise ValueError(f"{path}:{lineno}: a problem needs 'id' and 'answer' fields")
        answers[str(record["id"])] = record["answer"]
    return answers
