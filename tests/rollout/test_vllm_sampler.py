"""VLLMSampler: runs only where vllm and a CUDA GPU are present; its import contract runs anywhere."""

import importlib.util
import subprocess
import sys

import pytest
import torch

from rlhfkit.rollout.sampler import SamplingParams, TorchSampler

HAS_VLLM = importlib.util.find_spec("vllm") is not None
needs_gpu_vllm = pytest.mark.skipif(
    not (HAS_VLLM and torch.cuda.is_available()),
    reason="needs the vllm package and a CUDA GPU (vllm installed: %s, CUDA: %s)"
    % (HAS_VLLM, torch.cuda.is_available()),
)


def test_module_imports_without_loading_vllm():
    code = "import sys, rlhfkit.rollout.vllm_sampler, rlhfkit.rollout.generate; print('vllm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.skipif(torch.cuda.is_available() and HAS_VLLM, reason="checks the refusal where vllm/CUDA is absent")
def test_without_gpu_or_vllm_the_error_says_what_is_missing(tmp_path):
    from rlhfkit.rollout.vllm_sampler import VLLMSampler

    with pytest.raises((RuntimeError, ImportError), match="CUDA GPU|needs the vllm package"):
        VLLMSampler(tmp_path)


@needs_gpu_vllm
def test_vllm_samples_match_the_policy_and_follow_weight_updates(tmp_path):
    from rlhfkit.models import load_causal_lm, save_tiny
    from rlhfkit.rollout.vllm_sampler import VLLMSampler

    folder = save_tiny(tmp_path / "tiny")
    model, tok = load_causal_lm(folder)
    sampler = VLLMSampler(folder, dtype="float32", gpu_memory_utilization=0.2, max_model_len=256,
                          enforce_eager=True)
    prompts = [tok.encode(t, add_special_tokens=False) for t in ["hello world", "hi"]]
    params = SamplingParams(max_new_tokens=8, temperature=0.7, ignore_eos=True)

    def check_against(policy, batch):
        for i in range(len(batch.prompt_ids)):
            length = int(batch.completion_lengths[i])
            ids = torch.tensor([batch.prompt_ids[i] + batch.completion_ids[i, :length].tolist()])
            with torch.no_grad():
                logits = policy(input_ids=ids).logits[0].float()
            start = len(batch.prompt_ids[i]) - 1
            ref = torch.log_softmax(logits[start : start + length] / 0.7, -1)
            ref = ref.gather(-1, batch.completion_ids[i, :length, None]).squeeze(-1)
            torch.testing.assert_close(batch.logprobs[i, :length], ref, atol=2e-3, rtol=0)

    batch = sampler.sample(prompts, 3, params, seed=0)
    assert batch.completion_ids.shape == (6, 8) and batch.finish_reasons == ["length"] * 6
    check_against(model, batch)
    assert torch.equal(sampler.sample(prompts, 3, params, seed=0).completion_ids, batch.completion_ids)
    # After a "policy update" the engine samples from the new weights.
    other, _ = load_causal_lm(folder)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.05 * torch.randn_like(p))
    sampler.update_weights(other)
    check_against(other, sampler.sample(prompts, 3, params, seed=0))
    # The shared interface: TorchSampler gives the same shapes and fields.
    local = TorchSampler(model, tok).sample(prompts, 3, params, seed=0)
    assert local.completion_ids.shape == batch.completion_ids.shape
