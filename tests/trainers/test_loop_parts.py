"""The loop's learning-rate schedules equal transformers' own, and every field of every trainer's
config is a command-line flag (nothing left unexposed)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from typer.testing import CliRunner

from rlhfkit.trainers.loop import lr_factor


@pytest.mark.parametrize("schedule", ["constant", "linear", "cosine"])
@pytest.mark.parametrize("warmup", [0, 3])
def test_lr_schedules_equal_transformers(schedule, warmup):
    from transformers import (get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup,
                              get_linear_schedule_with_warmup)

    total = 17
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    if schedule == "constant":
        ref = get_constant_schedule_with_warmup(opt, warmup)
    elif schedule == "linear":
        ref = get_linear_schedule_with_warmup(opt, warmup, total)
    else:
        ref = get_cosine_schedule_with_warmup(opt, warmup, total)
    theirs = []
    for _ in range(total):
        theirs.append(opt.param_groups[0]["lr"])  # the lr the optimiser step would use
        opt.step()
        ref.step()
    ours = [lr_factor(step, total, warmup, schedule) for step in range(total)]
    assert ours == pytest.approx(theirs, abs=1e-12)


def test_every_config_field_is_a_flag():
    from rlhfkit.cli import app
    from rlhfkit.trainers.config import DPOConfig, RewardTrainConfig, RLConfig, SFTConfig

    commands = {"dpo": (["dpo"], DPOConfig), "sft": (["sft"], SFTConfig), "rl": (["rl"], RLConfig),
                "reward": (["reward", "train"], RewardTrainConfig)}
    for args, cls in commands.values():
        res = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "400", "TERMINAL_WIDTH": "400"})
        assert res.exit_code == 0, res.output
        for f in dataclasses.fields(cls):
            flag = f.metadata.get("flag", "--" + f.name.replace("_", "-"))
            assert flag in res.output, f"{' '.join(args)}: no flag for {f.name}"
