"""DPO-family trainer on a tiny byte-level Llama: learns a toy preference, gradient accumulation
invariance, exact resume, every loss runs, LoRA reference = base, HF-folder output."""

import json

import pytest
import torch

from rlhfkit.models import tiny_causal_lm
from rlhfkit.trainers.dpo import DPOConfig, DPOTrainer
from tests.toy_data import colour_pairs as toy_pairs

# 2 cores shared by several jobs: OpenMP spin-waiting makes multi-threaded tiny matmuls ~50x slower
torch.set_num_threads(1)


def make(cfg, out=None, seed=0, **tiny):
    model, tok = tiny_causal_lm(seed=seed, **tiny)
    return DPOTrainer(model, tok, cfg, out_dir=out, show_progress=False).setup(toy_pairs())


def flat_params(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_loss_falls_and_parameters_change():
    cfg = DPOConfig(lr=3e-3, batch_size=8, epochs=12, lr_schedule="constant", beta=0.1)
    t = make(cfg)
    before = flat_params(t.model).clone()
    hist = t.train()
    assert len(hist) == 24
    first, last = hist[0]["loss"], sum(h["loss"] for h in hist[-2:]) / 2
    assert first == pytest.approx(0.693147, abs=1e-5)  # policy == reference at step 0
    assert last < 0.3 and hist[-1]["rewards/accuracy"] == 1.0
    assert (flat_params(t.model) - before).abs().max() > 1e-3


def test_grad_accumulation_1x8_equals_8x1():
    runs = []
    for bs, acc in ((8, 1), (1, 8)):
        cfg = DPOConfig(lr=1e-3, batch_size=bs, grad_accum=acc, max_steps=2, lr_schedule="constant", max_grad_norm=0)
        t = make(cfg)
        hist = t.train()
        runs.append((flat_params(t.model), [h["loss"] for h in hist]))
    torch.testing.assert_close(runs[0][0], runs[1][0], atol=1e-5, rtol=0)
    assert runs[0][1] == pytest.approx(runs[1][1], abs=1e-6)
    assert runs[0][1][0] != runs[0][1][1]  # the second step saw trained weights


def test_resume_equals_uninterrupted(tmp_path):
    cfg = DPOConfig(lr=1e-3, batch_size=4, epochs=2, save_every=1, lr_schedule="linear", warmup_steps=1)
    full = make(cfg, tmp_path / "full")
    full.train()
    part = make(cfg, tmp_path / "part")
    part.train(stop_after=3)  # "killed" after step 3
    resumed = make(cfg, tmp_path / "part")  # fresh process: same init, reference from the cache
    hist = resumed.train()  # resumes from part/checkpoint (cfg.resume is on by default)
    assert [h["step"] for h in hist] == [4, 5, 6, 7, 8]
    assert torch.equal(flat_params(full.model), flat_params(resumed.model))
    assert [h["loss"] for h in full.history[3:]] == [h["loss"] for h in hist]
    lines = (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == list(range(1, 9))


@pytest.mark.parametrize("loss", ["ipo", "cdpo", "robust", "simpo", "kto"])
def test_every_loss_trains(loss):
    beta = {"simpo": 2.0, "ipo": 0.5}.get(loss, 0.1)
    cfg = DPOConfig(loss=loss, lr=3e-3, batch_size=8, epochs=6, lr_schedule="constant", beta=beta)
    t = make(cfg)
    hist = t.train()
    assert hist[-1]["loss"] < hist[0]["loss"]
    assert hist[-1]["rewards/margins"] > hist[0]["rewards/margins"]


def test_lora_reference_is_base_and_output_loads(tmp_path):
    from transformers import AutoModelForCausalLM

    base, tok = tiny_causal_lm(seed=3)
    base_logps = DPOTrainer(base, tok, DPOConfig(), show_progress=False).setup(toy_pairs()).ref_logps
    model, tok = tiny_causal_lm(seed=3)
    cfg = DPOConfig(lr=1e-2, batch_size=8, epochs=2, lora_r=4, lr_schedule="constant")
    t = DPOTrainer(model, tok, cfg, out_dir=tmp_path / "run", show_progress=False).setup(toy_pairs())
    torch.testing.assert_close(t.ref_logps, base_logps, atol=1e-6, rtol=0)
    t.train()
    with t.model.disable_adapter():  # adapters off = the untouched base, as the reference needs
        torch.testing.assert_close(t.sequence_logps(t.examples), base_logps, atol=1e-5, rtol=0)
    trained = t.sequence_logps(t.examples)
    assert (trained - base_logps).abs().max() > 1e-3
    folder = t.save()
    assert (folder / "model.safetensors").exists()
    reloaded = AutoModelForCausalLM.from_pretrained(folder)
    again = DPOTrainer(reloaded, tok, DPOConfig(), show_progress=False)
    torch.testing.assert_close(again.sequence_logps(t.examples), trained, atol=1e-4, rtol=0)


def test_pair_weight_two_equals_the_pair_twice():
    # A pair of weight 2 in a weighted mean is the same objective as that pair listed twice.
    pairs = toy_pairs(6)
    weighted = [p.model_copy(update={"weight": 2.0}) if i == 0 else p for i, p in enumerate(pairs)]
    duplicated = [pairs[0], *pairs]
    runs = []
    for data, bs in ((weighted, 6), (duplicated, 7)):
        model, tok = tiny_causal_lm(seed=0)
        cfg = DPOConfig(lr=1e-3, batch_size=bs, max_steps=1, lr_schedule="constant", max_grad_norm=0)
        t = DPOTrainer(model, tok, cfg, show_progress=False).setup(data)
        t.train()
        runs.append(flat_params(t.model))
    torch.testing.assert_close(runs[0], runs[1], atol=1e-6, rtol=0)


def test_weighted_grad_accumulation_and_zero_weight_pairs():
    pairs = [p.model_copy(update={"weight": w}) for p, w in zip(toy_pairs(9), [0.5, 2, 1, 3, 0.25, 1, 1, 4, 0])]
    runs = []
    for bs, acc in ((8, 1), (1, 8), (2, 4)):
        model, tok = tiny_causal_lm(seed=0)
        cfg = DPOConfig(lr=1e-3, batch_size=bs, grad_accum=acc, max_steps=1, lr_schedule="constant", max_grad_norm=0)
        t = DPOTrainer(model, tok, cfg, show_progress=False).setup(pairs)
        assert len(t.examples) == 8  # the weight-0 pair is dropped
        t.train()
        runs.append(flat_params(t.model))
    torch.testing.assert_close(runs[0], runs[1], atol=1e-5, rtol=0)
    torch.testing.assert_close(runs[0], runs[2], atol=1e-5, rtol=0)
