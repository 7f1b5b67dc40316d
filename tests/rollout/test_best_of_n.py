"""Best-of-N: the kept completion is the highest-scored of its prompt's N samples, and the KL bound
is log N - (N-1)/N; the CLI writes one line per prompt."""

from __future__ import annotations

import json
import math

import torch
from typer.testing import CliRunner

from rlhfkit.models import tiny_causal_lm
from rlhfkit.rollout.best_of_n import best_of_n
from rlhfkit.rollout.sampler import SamplingParams, TorchSampler
from tests.toy_data import lowercase_share

torch.set_num_threads(1)


def test_best_of_n_keeps_the_best_sample_and_reports_the_bound():
    model, tok = tiny_causal_lm(seed=2)
    prompts = ["hello", "write something", "a b c"]
    ids = [tok(p)["input_ids"] for p in prompts]
    result = best_of_n(TorchSampler(model, tok), prompts, ids, lowercase_share, 6, SamplingParams(max_new_tokens=10), seed=3)
    assert len(result.completions) == 3 and all(len(row) == 6 for row in result.all_rewards)
    for text, reward, row in zip(result.completions, result.rewards, result.all_rewards):
        assert reward == max(row) and lowercase_share([], [text])[0] == reward
    assert result.kl_bound == math.log(6) - 5 / 6
    single = sum(sum(row) / 6 for row in result.all_rewards) / 3
    assert result.mean_reward >= single


def test_best_of_n_cli(tmp_path, tiny_model_dir):
    from rlhfkit.cli import app

    prompts = tmp_path / "p.txt"
    prompts.write_text("one\ntwo\n")
    out = tmp_path / "bon.jsonl"
    res = CliRunner().invoke(app, ["best-of-n", "--policy", str(tiny_model_dir), "--reward", "tests.toy_data:lowercase_share",
                                   "--prompts", str(prompts), "--n", "3", "--max-new-tokens", "6", "--out", str(out)])
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 2 and rows[0]["reward"] == max(rows[0]["rewards"]) and rows[0]["n"] == 3
