"""The starting policy's answers are reused only for the exact same prompts and settings."""

import json

from rlhfkit.eval.policy_compare import cached_answers


def test_cached_answers_reuse_only_matching_keys(tmp_path):
    cache, calls = tmp_path / "ref.json", []

    def make(tag):
        return lambda: calls.append(tag) or [f"answer {tag}"]

    key = {"model": "m", "prompts": ["p"], "seed": 0}
    assert cached_answers(cache, key, make("a")) == ["answer a"]
    assert cached_answers(cache, key, make("b")) == ["answer a"] and calls == ["a"]  # reused
    assert cached_answers(cache, {**key, "seed": 1}, make("c")) == ["answer c"]  # other seed: sampled again
    assert json.loads(cache.read_text())["key"]["seed"] == 1
    assert cached_answers(None, key, make("d")) == ["answer d"] and calls == ["a", "c", "d"]  # no cache: always
