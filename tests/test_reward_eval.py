"""Reward-model metrics on hand-made numbers, the CLI and the recipe."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rlhfkit.eval.reward_eval import (
    bootstrap_ci,
    expected_calibration_error,
    length_split,
    pair_accuracy,
    summarize,
)

ROOT = Path(__file__).resolve().parents[1]


def test_accuracy_counts_ties_as_wrong():
    assert pair_accuracy([1.0, -0.5, 0.0, 2.0]) == 0.5


def test_bootstrap_ci_brackets_the_mean_and_narrows_with_n():
    small = [True] * 6 + [False] * 4
    lo, hi = bootstrap_ci(small, n_boot=2000, seed=1)
    assert lo < 0.6 < hi and 0.2 < lo and hi < 1.0
    big_lo, big_hi = bootstrap_ci(small * 30, n_boot=2000, seed=1)
    assert (big_hi - big_lo) < (hi - lo) / 3
    # normal approximation 1.96 * sqrt(p(1-p)/n) = 0.0554 for n = 300
    assert (big_hi - big_lo) / 2 == pytest.approx(1.96 * math.sqrt(0.24 / 300), abs=0.01)
    assert bootstrap_ci([True] * 5, n_boot=100) == (1.0, 1.0)


def test_ece_by_hand():
    # margins 0 -> p = 0.5, conf 0.5, wrong (tie); log(3) -> p = 0.75, conf .75, right;
    # -log(3) -> p = 0.25, conf .75, wrong. Bins over [0.5, 1] in tenths:
    # bin 0: {0.5 wrong}: |0 - 0.5| * 1/3; bin 5: {.75 right, .75 wrong}: |0.5 - 0.75| * 2/3
    ece = expected_calibration_error([0.0, math.log(3), -math.log(3)], bins=10)
    assert ece == pytest.approx(0.5 / 3 + 0.25 * 2 / 3, abs=1e-9)
    # perfectly calibrated: p = 0.75 and right 3 times out of 4
    assert expected_calibration_error([math.log(3)] * 3 + [-math.log(3)]) == pytest.approx(0.0, abs=1e-9)


def test_length_split_and_summary():
    margins = [1.0, -1.0, 2.0, 0.5]
    split = length_split(margins, chosen_len=[10, 20, 5, 7], rejected_len=[5, 5, 9, 7])
    assert split["chosen_longer"] == {"n": 2, "accuracy": 0.5}
    assert split["chosen_not_longer"] == {"n": 2, "accuracy": 1.0}
    s = summarize(margins, [10, 20, 5, 7], [5, 5, 9, 7], n_boot=50)
    assert s["accuracy"] == 0.75 and s["longer_answer_baseline"] == 0.5 and s["n_pairs"] == 4
    json.dumps(s)


def test_recipe_loads_and_cli_overrides_it(tmp_path):
    from rlhfkit.commands.recipe import merge
    from rlhfkit.data.recipe import read_recipe
    from rlhfkit.data.errors import DataError
    from rlhfkit.trainers.reward_model import RewardTrainConfig

    def build(path=None, **cli):
        return merge(RewardTrainConfig, read_recipe(path), cli, path, "reward")

    recipe = ROOT / "recipes" / "reward-hh-fast.yaml"
    cfg = build(recipe)
    assert cfg.model == "smollm2-135m" and cfg.freeze_layers == 24
    best = build(ROOT / "recipes" / "reward-hh.yaml")  # the same settings with 12 more layers trained
    assert best.freeze_layers == 12 and {**vars(best), "freeze_layers": 24} == vars(cfg)
    assert build(recipe, lr=1e-3, batch_size=None).lr == 1e-3
    assert build(recipe, batch_size=None).batch_size == cfg.batch_size
    assert build().lr == RewardTrainConfig().lr
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: 1e-5\nlearning_rat: 3\n")
    with pytest.raises(DataError, match="learning_rat"):
        build(bad)
    (tmp_path / "ok.yaml").write_text("lr: 1e-5\n")
    assert build(tmp_path / "ok.yaml").lr == 1e-5  # YAML 1.1 reads 1e-5 as a string: coerced by field type


def _write_hh(path: Path, n: int) -> Path:
    lines = []
    for i in range(n):
        q = f"\n\nHuman: question {i} about {'cats' if i % 2 else 'the weather today'}?\n\nAssistant:"
        lines.append(json.dumps({"chosen": q + " Sure, happy to help.", "rejected": q + " No. Go away"}))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_cli_train_then_eval(tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rlhfkit.commands.reward import app
    from rlhfkit.models import save_tiny

    tiny = save_tiny(tmp_path / "tiny", layers=1, hidden=32)
    train = _write_hh(tmp_path / "train.jsonl", 16)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("max_length: 48\nbatch_size: 4\nlr: 0.003\nmax_steps: 3\nwarmup_ratio: 0\n")
    runner = CliRunner()
    res = runner.invoke(app, ["train", "--data", str(train), "--eval", str(train), "--model", str(tiny),
                              "--out", str(tmp_path / "rm"), "--recipe", str(recipe), "--max-steps", "4",
                              "--no-progress"])
    assert res.exit_code == 0, res.output
    meta = json.loads((tmp_path / "rm" / "rlhfkit_reward.json").read_text())
    assert meta["steps"] == 4 and meta["train_config"]["max_length"] == 48  # CLI > YAML > default
    assert AutoModelForSequenceClassification.from_pretrained(tmp_path / "rm").config.num_labels == 1
    res = runner.invoke(app, ["eval", "--model", str(tmp_path / "rm"), "--data", str(train), "--n-boot", "50"])
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "rm" / "eval-train.json").read_text())
    assert summary["n_pairs"] == 16 and len(summary["accuracy_ci95"]) == 2
    # the same accuracy from plain transformers scoring, one sequence at a time, no packing
    import torch

    from rlhfkit.data import load_pairs
    from rlhfkit.packing import tokenize_reward_pairs

    hf = AutoModelForSequenceClassification.from_pretrained(tmp_path / "rm").eval()
    tok = AutoTokenizer.from_pretrained(tmp_path / "rm")
    wins = 0
    with torch.no_grad():
        for g in tokenize_reward_pairs(tok, load_pairs(train), 48):
            c, r = (hf(input_ids=torch.tensor([g.prompt_ids + ids])).logits.item() for ids in g.completion_ids)
            wins += c > r
    assert summary["accuracy"] == wins / 16


def test_cli_bad_data_gets_a_clear_error(tmp_path):
    from rlhfkit.commands.reward import app
    from rlhfkit.models import save_tiny

    tiny = save_tiny(tmp_path / "tiny", layers=1, hidden=16)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"chosen": "\\n\\nHuman: hi\\n\\nAssistant: yo"}\n{"oops": 1\n')
    res = CliRunner().invoke(app, ["train", "--data", str(bad), "--model", str(tiny), "--out",
                                   str(tmp_path / "x"), "--no-progress"])
    assert res.exit_code == 2
    assert "bad.jsonl" in res.output and "line 1" in res.output
