"""Run folders for the report tests: the reward and DPO runs come from the real trainers, driven
through their commands on a tiny model; the online-RL and loop runs follow docs/run-format.md."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from rlhfkit.models import save_tiny

from .report_fixtures import loop_run, online_rl_run

torch.set_num_threads(1)  # 2 shared cores: OpenMP spin-waiting slows tiny matmuls badly


def _pairs(path, n=8):
    path.write_text("".join(json.dumps({"prompt": f"Pick {i}:", "chosen": " yes" + " indeed" * (i % 3),
                                        "rejected": " no no"}) + "\n" for i in range(n)))
    return path


@pytest.fixture(scope="session")
def trained_runs(tmp_path_factory):
    """{'reward': folder, 'dpo': folder} written by `rlhfkit reward train` and `rlhfkit dpo`."""
    from rlhfkit.commands import dpo as dpo_cmd
    from rlhfkit.commands import reward as reward_cmd

    base = tmp_path_factory.mktemp("trained")
    model_dir = str(save_tiny(base / "tiny", layers=2, hidden=32))
    data = str(_pairs(base / "pairs.jsonl"))
    runs = {"reward": base / "rm", "dpo": base / "dpo"}
    res = CliRunner().invoke(reward_cmd.app, ["train", "--data", data, "--eval", data, "--model", model_dir,
                                              "--out", str(runs["reward"]), "--max-steps", "4", "--batch-size", "4",
                                              "--eval-every", "2", "--no-progress",
                                              "--n-heads", "2", "--bootstrap"])  # an ensemble: its rows in the report
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(dpo_cmd.app, ["--data", data, "--model", model_dir, "--out", str(runs["dpo"]),
                                           "--epochs", "2", "--lr", "1e-3", "--eval-data", data, "--kl-prompts", "2",
                                           "--no-progress"])
    assert res.exit_code == 0, res.output
    return runs


@pytest.fixture(scope="session")
def rl_run(tmp_path_factory):
    return online_rl_run(tmp_path_factory.mktemp("rl") / "ppo-run")


@pytest.fixture(scope="session")
def loop_dir(tmp_path_factory):
    return loop_run(tmp_path_factory.mktemp("loop") / "loop-run", rounds=2)
