"""Invariance harness over every registered trainer (the idea of TRL's tests/invariant): a trainer
that registers in ``rlhfkit.trainers.registry`` gets these tests without writing them.

- gradient accumulation: 1 micro-batch of 8 == 8 micro-batches of 1 (same parameters after two
  optimiser steps, same losses);
- resume: a run killed after step 2 and resumed from its checkpoint == the uninterrupted run,
  bit for bit;
- parameters move and every loss is finite;
- the output folder loads in plain transformers.

``reward-pl`` is the reward trainer with ``loss="pl"`` on K-wise rankings of mixed K with ties,
so the same guarantees cover rankings packed as one row; ``reward-bootstrap`` is a 3-head
ensemble whose heads train on their own bootstrap resamples (weights that differ per head).
"""

from __future__ import annotations

import math

import pytest
import torch

from rlhfkit.trainers.config import RLConfig
from rlhfkit.trainers.registry import TRAINERS
from tests.toy_data import polite_pairs, polite_rankings

torch.set_num_threads(1)  # tiny models: threads only contend on this shared 2-core machine

VARIANTS = {"reward-pl": ("reward", {"loss": "pl"}),
            "reward-bootstrap": ("reward", {"n_heads": 3, "bootstrap": True})}  # name -> (registered trainer, config overrides)
NAMES = sorted(TRAINERS) + sorted(VARIANTS)


def make(name: str, model_dir, out=None, **overrides):
    data = polite_rankings(16) if name == "reward-pl" else polite_pairs(16)
    name, variant = VARIANTS.get(name, (name, {}))
    overrides = {**variant, **overrides}
    entry = TRAINERS[name]
    settings = dict(model=str(model_dir), lr=1e-3, lr_schedule="constant", warmup_ratio=0.0, max_grad_norm=0.0,
                    batch_size=8, grad_accum=1, max_steps=3, max_length=64, progress=False, seed=0, log_every=1)
    settings.update(overrides)
    if name == "sft":
        settings.setdefault("packing", False)  # one example per row: 8 rows per step as for pairs
    if entry.config is RLConfig:  # online RL: prompts from the pairs, a toy rule as the reward
        settings = {"reward": "tests.toy_data:lowercase_share", "group_size": 4, "max_new_tokens": 6,
                    "kl_coef": 0.04, **settings}
    return entry.build(entry.config(**settings), data, out)


def flat(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.parametrize("name", NAMES)
def test_accumulation_1x8_equals_8x1(name, tiny_model_dir):
    runs = []
    for batch_size, grad_accum in ((8, 1), (1, 8)):
        trainer = make(name, tiny_model_dir, batch_size=batch_size, grad_accum=grad_accum, max_steps=2)
        trainer.train()
        runs.append((flat(trainer.model), [h["loss"] for h in trainer.history]))
    torch.testing.assert_close(runs[0][0], runs[1][0], atol=2e-5, rtol=0)
    assert runs[0][1] == pytest.approx(runs[1][1], abs=1e-5)
    assert runs[0][1][0] != runs[0][1][1]  # the second step saw trained weights


@pytest.mark.parametrize("name", NAMES)
def test_resume_equals_uninterrupted(name, tiny_model_dir, tmp_path):
    full = make(name, tiny_model_dir, tmp_path / "full", max_steps=4, save_every=1)
    full.train()
    part = make(name, tiny_model_dir, tmp_path / "part", max_steps=4, save_every=2)
    part.train(stop_after=3)  # "killed" after step 3; the last checkpoint is at step 2
    resumed = make(name, tiny_model_dir, tmp_path / "part", max_steps=4, save_every=2)
    assert [h["step"] for h in resumed.train()] == [3, 4]
    assert torch.equal(flat(full.model), flat(resumed.model))
    assert [h["loss"] for h in full.history] == [h["loss"] for h in resumed.history]
    steps = [int(line.split('"step": ')[1].split(",")[0])
             for line in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]  # the lost step 3 is logged once, by the resumed run


@pytest.mark.parametrize("name", NAMES)
def test_resume_refuses_changed_settings(name, tiny_model_dir, tmp_path):
    make(name, tiny_model_dir, tmp_path / "run", max_steps=2, save_every=1).train()
    with pytest.raises(ValueError, match="lr"):
        make(name, tiny_model_dir, tmp_path / "run", max_steps=4, save_every=1, lr=5e-3).train()


@pytest.mark.parametrize("name", NAMES)
def test_parameters_move_losses_finite_and_output_loads(name, tiny_model_dir, tmp_path):
    import transformers

    trainer = make(name, tiny_model_dir, tmp_path / "run")
    before = flat(trainer.model).clone()
    trainer.train()
    assert all(math.isfinite(h["loss"]) and math.isfinite(h["grad_norm"]) for h in trainer.history)
    assert (flat(trainer.model) - before).abs().max() > 1e-4
    folder = trainer.save()
    loaded = getattr(transformers, TRAINERS[VARIANTS.get(name, (name,))[0]].saved_as).from_pretrained(folder)
    assert loaded.num_parameters() > 0
    assert (folder / "metrics.jsonl").read_text().count("\n") == 3
