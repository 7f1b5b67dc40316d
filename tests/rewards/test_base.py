"""load_reward: rule names, weighted sums with kwargs, normalisation, and clear config errors."""

import math

import pytest

from rlhfkit.rewards.base import load_reward, normalize_rewards

PROMPTS = ["p"] * 4
COMPLETIONS = ["#### 3", "a b c d", "#### 5 words here", ""]


def test_rule_by_name_gets_metadata():
    fn = load_reward("rlhfkit.rewards.rules:numeric_exact_match")
    assert fn(PROMPTS, COMPLETIONS, answer=[3, 3, 5, 0]) == [1.0, 0.0, 1.0, 0.0]


def test_weighted_sum_from_recipe_entries():
    spec = [{"source": "rlhfkit.rewards.rules:numeric_exact_match", "weight": 2.0},
            {"source": "rlhfkit.rewards.rules:length_target", "weight": 0.5, "kwargs": {"target": 4}},
            {"source": "rlhfkit.rewards.rules:format_regex", "weight": -1, "kwargs": {"pattern": "^####"}}]
    fn = load_reward(spec)
    # exact match [1,0,1,0]; words [2,4,4,0] -> 1-|n-4|/4 = [0.5,1,1,0]; regex [1,0,1,0]
    expected = [2 * 1 + 0.5 * 0.5 - 1, 0 + 0.5 * 1 - 0, 2 * 1 + 0.5 * 1 - 1, 0.0]
    assert fn(PROMPTS, COMPLETIONS, answer=[3, 3, 5, 0], id=["a", "b", "c", "d"]) == pytest.approx(expected, abs=1e-12)


def test_normalisation_after_the_sum():
    raw = [1.0, 2.0, 3.0, 6.0]  # mean 3, population std sqrt((4+1+0+9)/4) = sqrt(3.5)
    assert normalize_rewards(raw, "none") == raw
    assert normalize_rewards(raw, "center") == [-2.0, -1.0, 0.0, 3.0]
    std = math.sqrt(3.5)
    assert normalize_rewards(raw, "whiten") == pytest.approx([-2 / std, -1 / std, 0.0, 3 / std], abs=1e-7)
    assert normalize_rewards([5.0], "whiten") == [0.0]
    assert normalize_rewards([2.0, 2.0], "whiten") == [0.0, 0.0]

    def constant_plus_index(prompts, completions, **metadata):
        return [10.0 + i for i in range(len(completions))]

    fn = load_reward([{"source": constant_plus_index, "weight": 2.0}], normalize="center")
    assert fn(PROMPTS, COMPLETIONS) == [-3.0, -1.0, 1.0, 3.0]


@pytest.mark.parametrize("spec, message", [
    ("no_such_module_xyz:fn", "cannot import module 'no_such_module_xyz'"),
    ("rlhfkit.rewards.rules:no_such_rule", "has no attribute 'no_such_rule'"),
    ("rlhfkit.rewards.rules:__doc__", "not a callable"),
    ("rlhfkit.rewards.rules:", "module:function"),
    ("just-a-name", "neither a reward-model folder"),
    ([{"source": "rlhfkit.rewards.rules:format_regex", "wieght": 1}], "expected keys source, weight, kwargs"),
    ([{"source": "rlhfkit.rewards.rules:format_regex", "weight": "high"}], "weight must be a finite number"),
    ([], "at least one source"),
])
def test_bad_specs_raise_naming_the_spec(spec, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        load_reward(spec)


def test_folder_without_config_and_bad_normalisation(tmp_path):
    with pytest.raises(ValueError, match="no config.json"):
        load_reward(str(tmp_path))
    with pytest.raises(ValueError, match="normalisation"):
        load_reward("rlhfkit.rewards.rules:format_regex", normalize="zscore")


def test_wrong_length_from_a_rule_is_an_error():
    fn = load_reward(lambda prompts, completions, **m: [1.0])
    with pytest.raises(ValueError, match="returned 1 values for 4 completions"):
        fn(PROMPTS, COMPLETIONS)
