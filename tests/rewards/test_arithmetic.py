"""The arithmetic task: deterministic, correct answers (recomputed from the text), disjoint splits."""

import json
import re

import pytest

from rlhfkit.rewards import arithmetic
from rlhfkit.rewards.arithmetic import INSTRUCTION, generate_problems, read_answers, write_problems
from rlhfkit.rewards.rules import numeric_exact_match
from rlhfkit.rollout.prompts import read_prompts

# Independent of the generator: read the numbers back out of the wording and redo the sum.
PATTERNS = {
    "shopping": (r"buys (\d+) \w+ at (\d+) dollars each and a bag for (\d+) dollars", lambda a, p, q: a * p + q),
    "sharing": (r"has (\d+) \w+ and shares them equally among (\d+) friends", lambda t, k: t // k),
    "ages": (r"is (\d+) years old\. \w+ is (\d+) years older than \w+\. How old will \w+ be in (\d+) years",
             lambda a, b, c: a + b + c),
    "rates": (r"makes (\d+) \w+ every hour\. .* in (\d+) hours", lambda r, h: r * h),
    "two_steps": (r"had (\d+) \w+, bought (\d+) more, then gave away (\d+)\.", lambda a, b, c: a + b - c),
    "pages": (r"reads (\d+) pages every day for (\d+) days and then (\d+) more pages", lambda p, d, q: p * d + q),
}


def recompute(problem: dict) -> tuple[str, tuple[int, ...], int]:
    for name, (pattern, formula) in PATTERNS.items():
        found = re.search(pattern, problem["prompt"])
        if found:
            numbers = tuple(int(x) for x in found.groups())
            if name == "sharing":
                assert numbers[0] % numbers[1] == 0  # shares equally means no remainder
            return name, numbers, formula(*numbers)
    raise AssertionError(f"no template recognised in {problem['prompt']!r}")


def test_answers_are_correct_and_prompts_ask_for_the_format():
    problems = generate_problems("train", 300, seed=1) + generate_problems("test", 100, seed=1)
    templates = set()
    for problem in problems:
        name, _, answer = recompute(problem)
        templates.add(name)
        assert problem["template"] == name and problem["answer"] == answer and answer >= 0
        assert problem["prompt"].endswith(INSTRUCTION) and "####" in problem["prompt"]
    assert templates == set(PATTERNS)  # every template is used


def test_deterministic_under_a_seed():
    assert generate_problems("train", 50, seed=7) == generate_problems("train", 50, seed=7)
    assert generate_problems("train", 50, seed=7) != generate_problems("train", 50, seed=8)
    assert generate_problems("train", 20, seed=7) == generate_problems("train", 50, seed=7)[:20]


def test_splits_are_disjoint_in_text_and_canonical_form():
    train = [p for seed in range(3) for p in generate_problems("train", 1500, seed=seed)]
    test = generate_problems("test", 400, seed=0)
    assert len({p["id"] for p in test}) == 400  # no duplicates within a split
    assert not {p["prompt"] for p in train} & {p["prompt"] for p in test}
    train_forms = {recompute(p)[:2] for p in train}
    test_forms = {recompute(p)[:2] for p in test}
    assert not train_forms & test_forms
    # the held-out share of canonical problems is near HELDOUT_PERCENT
    forms = [("rates", (r, h)) for r in range(2, 16) for h in range(2, 10)]
    share = sum(arithmetic.split_of(*f) == "test" for f in forms) / len(forms)
    assert 0.08 < share < 0.35


def test_written_file_reads_back_through_read_prompts(tmp_path):
    path = write_problems(tmp_path / "arith" / "test.jsonl", "test", 25, seed=3)
    records = read_prompts(path)
    problems = generate_problems("test", 25, seed=3)
    assert [(r.id, r.prompt) for r in records] == [(p["id"], p["prompt"]) for p in problems]
    answers = read_answers(path)
    assert [answers[r.id] for r in records] == [p["answer"] for p in problems]
    assert json.loads(path.read_text().splitlines()[0])["answer"] == problems[0]["answer"]
    # the exact-match reward scores a correct and a wrong completion
    gold = [f"Let me think. #### {answers[r.id]}" for r in records]
    wrong = [f"#### {answers[r.id] + 1}" for r in records]
    meta = {"answer": [answers[r.id] for r in records]}
    assert numeric_exact_match([r.prompt for r in records], gold, **meta) == [1.0] * 25
    assert numeric_exact_match([r.prompt for r in records], wrong, **meta) == [0.0] * 25


def test_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        generate_problems("valid", 3)
    with pytest.raises(ValueError, match="n must be between 0 and"):
        generate_problems("test", 10**6)
