"""Reward trainer: learns a toy task, gradient accumulation invariance, exact resume."""

from __future__ import annotations

import pytest
import torch

from rlhfkit.trainers.reward_model import RewardModelTrainer, RewardTrainConfig, train_reward_model
from tests.toy_data import polite_pairs as toy_pairs


@pytest.fixture(scope="module")
def tiny_dir(tiny_model_dir):
    return str(tiny_model_dir)


def _cfg(tiny_dir, out, **kw) -> RewardTrainConfig:
    base = dict(model=tiny_dir, out=str(out), max_length=64, batch_size=8, lr=3e-3, max_steps=4,
                warmup_ratio=0.0, progress=False, log_every=1)
    base.update(kw)
    return RewardTrainConfig(**base)


def _grads_of_first_step(tiny_dir, out, **kw) -> tuple[dict, dict]:
    from rlhfkit.trainers import loop

    trainer = RewardModelTrainer(_cfg(tiny_dir, out, max_grad_norm=0.0, **kw), train_pairs=toy_pairs(16)).setup()
    optimizer = loop.adamw(loop.trainable_parameters(trainer.model), 1e-3, 0.0)
    captured = {}

    def capture(*a, **k):
        captured.update({n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None})

    optimizer.step = capture
    metrics = loop.train_step(trainer, optimizer, 0)
    return captured, metrics


@pytest.mark.parametrize("packing", [True, False])
def test_grad_accumulation_1x8_equals_8x1(tiny_dir, tmp_path, packing):
    g1, m1 = _grads_of_first_step(tiny_dir, tmp_path / "a", batch_size=8, grad_accum=1, packing=packing)
    g8, m8 = _grads_of_first_step(tiny_dir, tmp_path / "b", batch_size=1, grad_accum=8, packing=packing)
    assert g1.keys() == g8.keys() and len(g1) > 5
    for name in g1:
        torch.testing.assert_close(g8[name], g1[name], atol=1e-5, rtol=0.00001, msg=name)
    assert m8["loss"] == pytest.approx(m1["loss"], abs=1e-6)
    assert max(g.abs().max().item() for g in g1.values()) > 1e-3  # gradients are not all ~0


def test_killed_and_resumed_run_reproduces_losses(tiny_dir, tmp_path):
    pairs = toy_pairs(40)
    full = RewardModelTrainer(_cfg(tiny_dir, tmp_path / "full", max_steps=5), train_pairs=pairs).setup()
    full_losses = [h["loss"] for h in full.train()]
    first = RewardModelTrainer(_cfg(tiny_dir, tmp_path / "cut", max_steps=5, save_every=2), train_pairs=pairs).setup()
    first.train(stop_after=3)  # "killed" after step 3; the last checkpoint is at step 2
    resumed = RewardModelTrainer(_cfg(tiny_dir, tmp_path / "cut", max_steps=5, resume=True),
                                 train_pairs=pairs).setup()
    assert [h["step"] for h in resumed.train()] == [3, 4, 5]  # continued from the step-2 checkpoint
    resumed_losses = [h["loss"] for h in resumed.history]
    assert resumed_losses == full_losses  # exact, step for step
    for (n, p), (_, q) in zip(full.model.named_parameters(), resumed.model.named_parameters()):
        assert torch.equal(p, q), n


def test_trainer_learns_toy_task_and_saves_loadable_model(tiny_dir, tmp_path):
    from transformers import AutoModelForSequenceClassification

    cfg = _cfg(tiny_dir, tmp_path / "rm", max_steps=0, epochs=4, batch_size=8, eval_every=4)
    trainer = RewardModelTrainer(cfg, train_pairs=toy_pairs(48), eval_pairs=toy_pairs(24, seed=1)).setup()
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    history = trainer.train()
    assert sum(h["loss"] for h in history[-4:]) / 4 < 0.5 * history[0]["loss"]
    changed = [n for n, p in trainer.model.named_parameters() if not torch.equal(p, before[n])]
    assert any("score" in n for n in changed) and any("layers.1" in n for n in changed)
    summary = trainer.evaluate(n_boot=100)
    assert summary["accuracy"] >= 0.9
    out = trainer.save(summary)
    assert AutoModelForSequenceClassification.from_pretrained(out).config.num_labels == 1
    assert (out / "metrics.jsonl").read_text().count("eval_accuracy") >= 2


def test_bf16_lora_and_freeze_options_run(tiny_dir, tmp_path):
    pytest.importorskip("peft")
    cfg = _cfg(tiny_dir, tmp_path / "lora", max_steps=2, dtype="bf16", lora_r=4, n_heads=2)
    out, summary = train_reward_model(cfg, train_pairs=toy_pairs(16), eval_pairs=toy_pairs(8, seed=2))
    assert summary["n_heads"] == 2 and "mean_disagreement" in summary
    cfg = _cfg(tiny_dir, tmp_path / "frozen", max_steps=1, freeze_layers=1)
    trainer = RewardModelTrainer(cfg, train_pairs=toy_pairs(8)).setup()
    frozen = [n for n, p in trainer.model.named_parameters() if not p.requires_grad]
    assert any("layers.0" in n for n in frozen) and not any("layers.1" in n for n in frozen)


@pytest.mark.parametrize("fmt", ["rlhfkit", "trl-pairs", "hh"])
def test_trainer_reads_any_supported_format(tiny_dir, tmp_path, fmt):
    from rlhfkit.data import write_items
    from rlhfkit.schema import Annotation, PreferenceItem, RankingJudgement, Response

    items = [PreferenceItem(prompt=f"\n\nHuman: q{i}?\n\nAssistant:",
                            responses=[Response(text=" yes"), Response(text=" no"), Response(text=" maybe")],
                            annotations=[Annotation(judgement=RankingJudgement(tiers=[[0], [2], [1]]))])
             for i in range(4)]
    if fmt != "rlhfkit":  # pair formats carry one (chosen, rejected) per record
        items = [PreferenceItem(prompt=it.prompt, responses=it.responses[:2],
                                annotations=[Annotation(judgement=RankingJudgement(tiers=[[0], [1]]))])
                 for it in items]
    path = tmp_path / f"data.{fmt}.jsonl"
    write_items(path, items, fmt=fmt)
    trainer = RewardModelTrainer(_cfg(tiny_dir, tmp_path / "rm", data=str(path), max_steps=1)).setup()
    assert len(trainer.train_tok) == (12 if fmt == "rlhfkit" else 4)  # a K=3 ranking gives 3 pairs
    assert trainer.train()[0]["loss"] > 0
