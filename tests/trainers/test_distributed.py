"""Two data-parallel processes equal one (TRL tests/invariant, OpenRLHF test_loss_aggregation):
a DPO run and a reward-model run of two optimiser steps, started with ``torchrun --nproc_per_node
2`` on CPU (gloo), end with the parameters of the same run in one process with the same global
batch. The pair weights vary, so a rank that normalised by its own share of the weight (instead of
the step's, summed over ranks) or skipped the gradient all-reduce would end elsewhere.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.trainers.distributed_worker import run

REPO = Path(__file__).resolve().parents[2]


def test_two_gloo_processes_equal_one(tiny_model_dir, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)
    result_file = tmp_path / "ranks.pt"
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(REPO / "tests" / "trainers" / "distributed_worker.py"), str(tiny_model_dir),
                           str(result_file)], env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    two = torch.load(result_file, weights_only=False)
    assert two["world_size"] == 2 and two["world_size_after"] == 2  # really two processes

    one = run(str(tiny_model_dir))
    assert one["world_size"] == 1
    for name in ("dpo", "reward"):
        assert (one[name]["params"] - one[name]["initial"]).abs().max() > 1e-4  # the steps moved the weights
        torch.testing.assert_close(two[name]["params"], one[name]["params"], atol=1e-6, rtol=0)
        assert two[name]["losses"] == pytest.approx(one[name]["losses"], abs=1e-6)
        assert two[name]["grad_norms"] == pytest.approx(one[name]["grad_norms"], rel=1e-5)
        assert torch.equal(two[f"rank1_{name}_params"], two[name]["params"])  # the ranks stay in step

