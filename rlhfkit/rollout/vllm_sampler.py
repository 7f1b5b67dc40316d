"""The ``Sampler`` interface backed by vLLM, for GPU machines.

vLLM keeps its own copy of the policy's weights, so after each policy update the trainer calls
``update_weights(policy)`` (or a state dict) and the new weights are loaded into the running
engine, as OpenRLHF and veRL do for a colocated engine: the engine runs in this process
(``VLLM_ENABLE_V1_MULTIPROCESSING=0``) and the tensors go through the model's own
``load_weights`` (which maps Hugging Face names onto vLLM's fused layers), then the prefix cache
is reset so no KV computed with the old weights is reused.

Where it departs from ``TorchSampler``:
- log-probs: the engine is built with ``logprobs_mode="processed_logprobs"``, i.e. after the
  temperature; without top-k/top-p that is exactly log softmax(logits / temperature), our
  definition. With truncation vLLM would report the renormalised truncated distribution instead,
  so top-k/top-p are refused here rather than silently returning other numbers.
  ``raw_logprobs`` is filled only at temperature 1 (where it is the same quantity), else None.
- stop strings: vLLM matches them on detokenised text too; the stop string is kept in the text
  (``include_stop_str_in_output``) as in ``TorchSampler``.
- seeds: the per-request seed makes a call reproducible on the same engine and hardware.

vllm is imported only when a ``VLLMSampler`` is built; nothing else in rlhfkit needs it.
This module is not exercised on a machine without CUDA and vllm (its test is skipped there).
"""

from __future__ import annotations

import os

import torch

from rlhfkit.rollout.sampler import RolloutBatch, SamplingParams, check_prompts

def _import_vllm():
    try:
        import vllm
    except ImportError as err:
        raise ImportError("VLLMSampler needs the vllm package (GPU machines): pip install vllm") from err
    return vllm


def _finish_reason(output) -> str:
    if output.finish_reason == "length":
        return "length"
    # stop_reason is the matched stop string, or None / a token id when EOS ended the sample.
    return "stop" if isinstance(output.stop_reason, str) else "eos"


class VLLMSampler:
    """Sampler over a colocated vLLM engine.

    model_path: a Hugging Face folder (e.g. ``resolve_model_dir("smollm2-135m")``);
    engine_kwargs go to ``vllm.LLM`` (dtype, gpu_memory_utilization, max_model_len, ...).
    """

    def __init__(self, model_path, pad_token_id: int = 0, **engine_kwargs):
        if not torch.cuda.is_available():
            raise RuntimeError("VLLMSampler needs a CUDA GPU; use TorchSampler on this machine")
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # engine in this process
        vllm = _import_vllm()
        self._vllm = vllm
        engine_kwargs.setdefault("logprobs_mode", "processed_logprobs")
        self.llm = vllm.LLM(model=str(model_path), **engine_kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else pad_token_id

    def _engine_model(self):
        """The engine's torch model when the engine runs in this process, else None."""
        executor = self.llm.llm_engine.model_executor
        worker = getattr(executor, "driver_worker", None)
        worker = getattr(worker, "worker", worker)  # WorkerWrapperBase wraps the worker
        runner = getattr(worker, "model_runner", None)
        return getattr(runner, "model", None)

    def update_weights(self, model_or_state_dict) -> None:
        state = model_or_state_dict
        if isinstance(state, torch.nn.Module):
            state = state.state_dict()
        weights = [(name, tensor.detach()) for name, tensor in state.items()]
        model = self._engine_model()
        if model is not None:
            model.load_weights(weights)
        else:  # engine in worker processes: run the same call there
            self.llm.collective_rpc(_load_weights_on_worker, args=(weights,))
        self.llm.reset_prefix_cache()  # cached KV was computed with the old weights

    def sample(self, prompt_ids: list[list[int]], n: int, params: SamplingParams, seed: int) -> RolloutBatch:
        check_prompts(prompt_ids, n)
        if params.top_k or params.top_p < 1:
            raise ValueError("VLLMSampler: top-k/top-p change what vLLM reports as log-probs (the "
                             "truncated distribution); use temperature only, or TorchSampler")
        vllm = self._vllm
        request = vllm.SamplingParams(
            n=n, temperature=params.temperature, max_tokens=params.max_new_tokens,
            stop=list(params.stop) or None, include_stop_str_in_output=True,
            ignore_eos=params.ignore_eos, seed=seed, logprobs=0,
        )
        prompts = [vllm.inputs.TokensPrompt(prompt_token_ids=list(p)) for p in prompt_ids]
        outputs = self.llm.generate(prompts, request, use_tqdm=False)
        samples = [(list(out.prompt_token_ids), c) for out in outputs for c in out.outputs]
        width = max(len(c.token_ids) for _, c in samples)
        total = len(samples)
        ids = torch.full((total, width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((total, width), dtype=torch.bool)
        logprobs = torch.zeros((total, width), dtype=torch.float32)
        for row, (_, c) in enumerate(samples):
            k = len(c.token_ids)
            ids[row, :k] = torch.tensor(c.token_ids)
            mask[row, :k] = True
            # logprobs=0 returns, per position, a dict holding the sampled token's entry.
            logprobs[row, :k] = torch.tensor([step[t].logprob for t, step in zip(c.token_ids, c.logprobs)])
        return RolloutBatch(
            prompt_ids=[p for p, _ in samples],
            completion_ids=ids,
            completion_mask=mask,
            logprobs=logprobs,
            raw_logprobs=logprobs.clone() if params.temperature == 1.0 else None,
            finish_reasons=[_finish_reason(c) for _, c in samples],
            texts=[c.text for _, c in samples],
            n=n,
            stats={"backend": "vllm"},
        )


def _load_weights_on_worker(worker, weights) -> None:
    worker.model_runner.model.load_weights(weights)
