"""The helpers of benchmarks/rl_smollm2.py that decide what its before/after numbers mean."""

import json

import pytest

from tests.benchmark_modules import load_benchmark

bench = load_benchmark("rl_smollm2")


def test_paired_ci_of_a_constant_shift_is_that_shift():
    diff, lo, hi = bench.paired_ci([0.1, 0.5, 0.9], [0.3, 0.7, 1.1])
    assert diff == pytest.approx(0.2) and lo == pytest.approx(0.2) and hi == pytest.approx(0.2)


def test_per_prompt_means_average_each_prompts_consecutive_answers():
    assert bench.per_prompt_means([1, 3, 0, 0, 2, 4], 2) == [2.0, 0.0, 3.0]
    assert bench.per_prompt_means([1, 2], 1) == [1.0, 2.0]
    with pytest.raises(ValueError, match="groups of 4"):
        bench.per_prompt_means([1, 2, 3], 4)


def test_with_instruction_replaces_only_the_shipped_instruction():
    from rlhfkit.rewards.arithmetic import INSTRUCTION, generate_problems

    problem = generate_problems("test", 1)[0]["prompt"]
    changed = bench.with_instruction(problem, "Reply with the number only.")
    assert changed.endswith("\nReply with the number only.") and INSTRUCTION not in changed
    assert changed.split("\n")[0] == problem.split("\n")[0]
    assert bench.with_instruction(problem, None) == problem
    with pytest.raises(ValueError, match="shipped instruction"):
        bench.with_instruction("What is 2 + 2?", "Number only.")


def test_cached_baseline_is_reused_only_for_the_same_settings(tmp_path):
    path = tmp_path / "before.json"
    calls = []

    def compute(value):
        return lambda: calls.append(value) or [value]

    assert bench.cached_baseline(str(path), {"seed": 0}, compute(1.0)) == [1.0]
    assert bench.cached_baseline(str(path), {"seed": 0}, compute(2.0)) == [1.0]  # read back
    assert bench.cached_baseline(str(path), {"seed": 1}, compute(3.0)) == [3.0]  # other settings: recomputed
    assert calls == [1.0, 3.0]
    assert json.loads(path.read_text())["key"] == {"seed": 1}
    assert bench.cached_baseline(None, {"seed": 0}, compute(4.0)) == [4.0]
