"""`rlhfkit rl` end to end on a tiny model folder: generated arithmetic prompts, a rule reward,
a loadable output folder, resume from the checkpoint, clear errors; every RL recipe loads."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from rlhfkit.cli import app


def test_rl_cli_trains_resumes_and_writes_a_loadable_folder(tmp_path, tiny_model_dir):
    from transformers import AutoModelForCausalLM

    runner = CliRunner()
    prompts = tmp_path / "arith.jsonl"
    assert runner.invoke(app, ["data", "arithmetic", str(prompts), "--n", "8"]).exit_code == 0
    out = tmp_path / "run"
    args = ["rl", "--algo", "rloo", "--policy", str(tiny_model_dir), "--reward",
            "rlhfkit.rewards.rules:numeric_exact_match", "--prompts", str(prompts), "--out", str(out),
            "--group-size", "3", "--max-new-tokens", "5", "--batch-size", "2", "--save-every", "1", "--no-progress"]
    res = runner.invoke(app, args + ["--max-steps", "2"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, args + ["--max-steps", "3"])  # resumes at step 2, runs step 3 only
    assert res.exit_code == 0, res.output
    steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]
    assert json.loads((out / "rlhfkit_rl_config.json").read_text())["algo"] == "rloo"
    AutoModelForCausalLM.from_pretrained(out)


def test_rl_cli_clear_errors(tmp_path, tiny_model_dir):
    runner = CliRunner()
    res = runner.invoke(app, ["rl", "--policy", str(tiny_model_dir), "--prompts", str(tmp_path / "none.txt"),
                              "--reward", "rlhfkit.rewards.rules:length_target"])
    assert res.exit_code == 2 and "none.txt" in res.output
    prompts = tmp_path / "p.txt"
    prompts.write_text("hi\n")
    res = runner.invoke(app, ["rl", "--policy", str(tiny_model_dir), "--prompts", str(prompts), "--reward", "nope:fn"])
    assert res.exit_code == 2 and "nope" in res.output
    res = runner.invoke(app, ["rl", "--algo", "ppo2", "--prompts", str(prompts), "--reward", "x:y"])
    assert res.exit_code == 2 and "ppo2" in res.output
