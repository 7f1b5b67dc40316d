"""Two data-parallel processes equal one (TRL tests/invariant, OpenRLHF test_loss_aggregation):
a DPO run and a reward-model run of two optimiser steps, started with ``torchrun --nproc_per_node
2`` on CPU (gloo), end with the parameters of the same run in one process with the same global
batch. The pair weights vary, so a rank that normalised by its own share of the weight (instead of
the step's, summed over ranks) or skipped the gradient all-reduce would end elsewhere.

The same launch runs DPO, the reward model and SFT fully sharded (``shard: fsdp``: FSDP2, each rank
holding half of every parameter): they must end where one unsharded process ends too, so a
reduce-scatter that averaged instead of summing, a missing root gather or a rank running fewer
forwards (the second step gives rank 0 two micro-batches and rank 1 one) would show. The reward
model's held-out evaluation (in the loop and after it) must agree too, and the model folders the
sharded runs save from the gathered shards must load in plain transformers with those weights.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.trainers.distributed_worker import full_parameters, run

REPO = Path(__file__).resolve().parents[2]


def test_two_gloo_processes_equal_one(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "ACCELERATE_USE_FSDP",
                "FSDP_TRANSFORMER_CLS_TO_WRAP"):
        env.pop(var, None)
    result_file = tmp_path / "ranks.pt"
    # ~20 s of CPU; the timeout is for a 2-core machine shared with other jobs, where two starved
    # processes took 80 s only to import torch
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(REPO / "tests" / "trainers" / "distributed_worker.py"), str(tiny_model_dir),
                           str(result_file)], env=env, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    two = torch.load(result_file, weights_only=False)
    assert two["world_size"] == 2 and two["world_size_after"] == 2  # really two processes

    one = run(str(tiny_model_dir), ("dpo", "reward", "sft"))
    assert one["world_size"] == 1
    assert [two[name]["sharded"] for name in ("dpo", "reward", "dpo:fsdp", "reward:fsdp", "sft:fsdp")] == [
        False, False, True, True, True]  # the sharded runs really ran FSDP, the others plain data parallelism
    for name in ("dpo", "reward", "dpo:fsdp", "reward:fsdp", "sft:fsdp"):
        reference = one[name.split(":")[0]]  # sharded or not, the one-process run is the reference
        assert (reference["params"] - reference["initial"]).abs().max() > 1e-4  # the steps moved the weights
        torch.testing.assert_close(two[name]["params"], reference["params"], atol=1e-6, rtol=0)
        assert two[name]["losses"] == pytest.approx(reference["losses"], abs=1e-6)
        assert two[name]["grad_norms"] == pytest.approx(reference["grad_norms"], rel=1e-5)
        assert torch.equal(two[f"rank1_{name}_params"], two[name]["params"])  # the ranks stay in step
    for name in ("reward", "reward:fsdp"):  # held-out margin: evaluated in the loop, then after it
        assert two[name]["eval_margins"] == pytest.approx(one["reward"]["eval_margins"], abs=1e-6)

    # the folders rank 0 wrote from the gathered shards: plain transformers models, the trained weights
    for name, auto, architecture in (("dpo:fsdp", AutoModelForCausalLM, "LlamaForCausalLM"),
                                     ("sft:fsdp", AutoModelForCausalLM, "LlamaForCausalLM"),
                                     ("reward:fsdp", AutoModelForSequenceClassification, "LlamaForSequenceClassification")):
        folder = Path(two[name]["folder"])
        # the class, not the FSDP wrapper's "FSDPLlama...", names the architecture
        assert json.loads((folder / "config.json").read_text())["architectures"] == [architecture]
        assert torch.equal(full_parameters(auto.from_pretrained(folder)), two[name]["params"])
    assert (Path(two["reward:fsdp"]["folder"]) / "rlhfkit_reward.json").exists()
