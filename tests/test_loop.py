"""`rlhfkit loop` on the tiny model: every phase writes its files, lineage traces the policy back to
the judgements, a report is written, and a run killed with SIGKILL and started again ends with
exactly the weights of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from rlhfkit.cli import app


def write_recipe(tmp_path: Path, model_dir: Path, name: str, algo: str = "dpo") -> Path:
    prompts = tmp_path / "eval.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"e{i}", "prompt": f"Say something about {w}."}) + "\n"
                               for i, w in enumerate(["cats", "rain", "tea", "maps"])))
    recipe = tmp_path / f"{name}.yaml"
    recipe.write_text(f"""trainer: loop
name: {name}
out: {tmp_path / 'runs'}
model: {model_dir}
rounds: 2
prompts_per_round: 4
responses_per_prompt: 3
max_new_tokens: 6
eval_prompts: {prompts}
gold: tests.toy_data:lowercase_share
reward: {{max_length: 48, batch_size: 4, lr: 0.001}}
policy: {{algo: {algo}, lr: 0.001, batch_size: 2}}
""")
    return recipe


def test_loop_runs_every_phase_and_traces_lineage(tmp_path, tiny_model_dir):
    recipe = write_recipe(tmp_path, tiny_model_dir, "a")
    res = CliRunner().invoke(app, ["loop", str(recipe), "--no-progress"])
    assert res.exit_code == 0, res.output
    run = tmp_path / "runs" / "a"
    for k in (1, 2):
        r = run / f"round-{k}"
        phases = json.loads((r / "phases.json").read_text())
        assert phases["done"] == ["generate", "feedback", "reward", "policy", "eval"]
        assert set(phases["seconds"]) == set(phases["done"]) and all(s >= 0 for s in phases["seconds"].values())
        for f in ("samples.jsonl", "judgements.jsonl", "reward/config.json", "policy/model.safetensors",
                  "eval/winrate.json", "eval/samples.jsonl"):
            assert (r / f).exists(), f
    judgements = [json.loads(x) for x in (run / "round-2" / "judgements.jsonl").read_text().splitlines()]
    assert all(a["source"] == "simulated" for it in judgements for a in it["annotations"])
    rm_lineage = json.loads((run / "round-2" / "reward" / "lineage.json").read_text())
    assert rm_lineage["judgements"] == 8  # 4 items a round, one ranking each, two rounds
    winrate = json.loads((run / "round-2" / "eval" / "winrate.json").read_text())
    assert winrate["n"] == 4 and winrate["ci95"][0] <= winrate["win_rate"] <= winrate["ci95"][1]
    # the starting policy's answers are sampled once and reused by every round's comparison
    cached = json.loads((run / "reference_answers.json").read_text())["answers"]
    for k in (1, 2):
        rows = [json.loads(x) for x in (run / f"round-{k}" / "eval" / "samples.jsonl").read_text().splitlines()]
        assert [r["reference"] for r in rows] == cached
    assert (run / "report.html").exists() and "report:" in res.output
    res = CliRunner().invoke(app, ["lineage", str(run / "round-2" / "policy")])
    assert res.exit_code == 0, res.output
    text = res.output
    assert "policy" in text and "round-1/policy" in text and "8 judgements" in text and "4 judgements" in text
    assert str(tiny_model_dir) in text  # the chain ends at the base model


def _policy_weights(run: Path) -> dict:
    return load_file(str(run / "round-2" / "policy" / "model.safetensors"))


@pytest.mark.parametrize("algo", ["dpo"])
def test_killed_loop_resumes_to_the_uninterrupted_result(tmp_path, tiny_model_dir, algo):
    whole = write_recipe(tmp_path, tiny_model_dir, "whole", algo)
    cut = write_recipe(tmp_path, tiny_model_dir, "cut", algo)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "rlhfkit.cli", "loop"]
    subprocess.run(cmd + [str(whole), "--no-progress"], check=True, env=env, capture_output=True, timeout=600)
    # kill -9 in the middle of round 1's policy phase (after the reward model is recorded)
    proc = subprocess.Popen(cmd + [str(cut), "--no-progress"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    phases = tmp_path / "runs" / "cut" / "round-1" / "phases.json"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if phases.exists() and "reward" in json.loads(phases.read_text())["done"]:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert "eval" not in json.loads(phases.read_text())["done"]  # it really was cut short
    subprocess.run(cmd + [str(cut), "--no-progress"], check=True, env=env, capture_output=True, timeout=600)
    a, b = _policy_weights(tmp_path / "runs" / "whole"), _policy_weights(tmp_path / "runs" / "cut")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    wa = json.loads((tmp_path / "runs" / "whole" / "round-2" / "eval" / "winrate.json").read_text())
    wb = json.loads((tmp_path / "runs" / "cut" / "round-2" / "eval" / "winrate.json").read_text())
    assert {k: v for k, v in wa.items() if k not in ("policy",)} == {k: v for k, v in wb.items() if k not in ("policy",)}


def test_reward_data_new_continues_the_previous_reward_model(tmp_path, tiny_model_dir):
    from rlhfkit.models.reward_model import RewardModel

    recipe = write_recipe(tmp_path, tiny_model_dir, "cont")
    # lr 0: a continued model must come out exactly as it went in, i.e. equal to round 1's
    recipe.write_text(recipe.read_text().replace("lr: 0.001}\npolicy", "lr: 0.0, loss: pl}\npolicy")
                      .replace("algo: dpo,", "algo: dpo, pairs: judgements,")
                      + "reward_data: new\neval_samples: 2\n")
    res = CliRunner().invoke(app, ["loop", str(recipe), "--no-progress"])
    assert res.exit_code == 0, res.output
    run = tmp_path / "runs" / "cont"
    first = load_file(str(run / "round-1" / "reward" / "model.safetensors"))
    second = load_file(str(run / "round-2" / "reward" / "model.safetensors"))
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
    fresh = RewardModel.from_backbone(tiny_model_dir, seed=2).net.state_dict()  # what "all" would start from
    head = [k for k in first if "score" in k]
    assert head and not all(torch.equal(fresh[k], second[k]) for k in head)
    lineage = json.loads((run / "round-2" / "reward" / "lineage.json").read_text())
    assert lineage["judgements"] == 4 and lineage["judgement_files"] == [str(run / "round-2" / "judgements.jsonl")]
    assert lineage["parent_reward_model"] == str(run / "round-1" / "reward")
    assert lineage["loss"] == "pl" and lineage["pairs"] == 4  # one whole ranking per item, not 3 pairs each
    res = CliRunner().invoke(app, ["lineage", str(run / "round-2" / "policy")])
    assert res.exit_code == 0 and "round-1/reward" in res.output and "4 rankings" in res.output
    winrate = json.loads((run / "round-2" / "eval" / "winrate.json").read_text())
    assert winrate["n"] == 8 and winrate["prompts"] == 4 and winrate["ci_resamples"] == "prompts"
    # pairs: judgements -> one (top, bottom) pair per ranking that is not a full tie, from the annotators
    from rlhfkit.data import read_items
    from rlhfkit.trainers.rounds import content_hash, extreme_pair

    items = read_items(run / "round-2" / "judgements.jsonl")
    expected = [{"prompt": it.prompt, "chosen": it.responses[b].text, "rejected": it.responses[w].text}
                for it in items for a in it.annotations if (bw := extreme_pair(a.judgement)) for b, w in [bw]]
    policy = json.loads((run / "round-2" / "policy" / "lineage.json").read_text())
    assert policy["pairs"] == len(expected) > 0
    from rlhfkit.schema import PreferencePair

    records = [PreferencePair(**e).model_dump(mode="json") for e in expected]
    assert policy["pairs_sha256"] == content_hash(records)


def test_extreme_pair_and_pairs_setting(tmp_path, tiny_model_dir):
    from rlhfkit.data.errors import DataError
    from rlhfkit.schema import PairwiseJudgement, RankingJudgement
    from rlhfkit.trainers.rounds import extreme_pair, read_loop_recipe

    assert extreme_pair(RankingJudgement(tiers=[[2], [0, 3], [1]])) == (2, 1)
    assert extreme_pair(RankingJudgement(tiers=[[1, 2], [0]])) == (1, 0)  # a tied top: its first answer
    assert extreme_pair(RankingJudgement(tiers=[[0, 1, 2]])) is None  # all tied: no preference
    assert extreme_pair(PairwiseJudgement(a=0, b=1, choice="b")) == (1, 0)
    assert extreme_pair(PairwiseJudgement(a=0, b=1, choice="tie")) is None
    recipe = write_recipe(tmp_path, tiny_model_dir, "bad")
    recipe.write_text(recipe.read_text().replace("algo: dpo,", "algo: dpo, pairs: annotators,"))
    with pytest.raises(DataError, match="policy.pairs"):
        read_loop_recipe(recipe)
    recipe.write_text(recipe.read_text().replace("algo: dpo, pairs: annotators,", "algo: grpo, pairs: judgements,"))
    with pytest.raises(DataError, match="only with algo: dpo"):
        read_loop_recipe(recipe)
