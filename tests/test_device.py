"""bf16 autocast follows the model's device and batches move to it (the reward model and the
policy log-probs). The CUDA tests run where a GPU exists and are skipped with a reason elsewhere;
the CPU test checks the same mechanism on the CPU."""

from __future__ import annotations

import pytest
import torch

from rlhfkit.models.logprobs import completion_logps
from rlhfkit.models.reward_model import RewardModel
from rlhfkit.packing import collate_pairs, tokenize_pairs, tokenize_reward_pairs
from tests.toy_data import polite_pairs

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU; none on this machine")


def _matmul_dtypes(module: torch.nn.Module) -> list[torch.dtype]:
    """Output dtypes of the first MLP projection, recorded by a hook."""
    seen: list[torch.dtype] = []
    layer = next(m for n, m in module.named_modules() if n.endswith("layers.0.mlp.down_proj"))
    layer.register_forward_hook(lambda mod, inp, out: seen.append(out.dtype))
    return seen


def _reward_model(model_dir, device):
    rm = RewardModel.from_backbone(model_dir).to(device).eval()
    batch = collate_pairs(tokenize_reward_pairs(rm.tokenizer, polite_pairs(4), 64), rm.tokenizer.pad_token_id)
    return rm, batch  # the batch stays on the CPU: the model moves it


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_cuda)])
def test_reward_model_bf16_autocasts_on_its_own_device(tiny_model_dir, device):
    rm, batch = _reward_model(tiny_model_dir, device)
    seen = _matmul_dtypes(rm.net)
    with torch.no_grad():
        chosen, rejected = rm.pair_rewards(batch, torch.bfloat16)
        fp32, _ = rm.pair_rewards(batch, torch.float32)
    assert seen == [torch.bfloat16, torch.float32]  # autocast on for bf16, off for fp32
    assert chosen.device.type == device and chosen.dtype == torch.float32 and chosen.shape == (4, 1)
    torch.testing.assert_close(chosen, fp32, atol=0.05, rtol=0)  # the same scores, to bf16 precision


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_cuda)])
def test_policy_logprobs_bf16_autocast_on_its_own_device(device):
    from rlhfkit.models import tiny_causal_lm

    model, tok = tiny_causal_lm(seed=3)
    model.to(device)
    batch = collate_pairs(tokenize_pairs(tok, polite_pairs(4), 64), tok.pad_token_id)
    seen = _matmul_dtypes(model)
    with torch.no_grad():
        bf16 = completion_logps(model, batch, torch.bfloat16)
        fp32 = completion_logps(model, batch, torch.float32)
    assert seen == [torch.bfloat16, torch.float32]
    assert bf16.device.type == device and bf16.dtype == torch.float32
    torch.testing.assert_close(bf16, fp32, atol=0.5, rtol=0.02)  # bf16 rounding over ~20 tokens


@needs_cuda
def test_reward_trainer_bf16_step_on_cuda(tiny_model_dir, tmp_path):
    from rlhfkit.trainers.reward_model import RewardModelTrainer, RewardTrainConfig

    cfg = RewardTrainConfig(model=str(tiny_model_dir), out=str(tmp_path / "rm"), max_length=64, batch_size=4,
                            max_steps=1, dtype="bf16", progress=False)
    trainer = RewardModelTrainer(cfg, train_pairs=polite_pairs(8), model=RewardModel.from_backbone(tiny_model_dir).to("cuda"))
    history = trainer.setup().train()
    assert history[0]["loss"] > 0 and next(trainer.model.parameters()).device.type == "cuda"
