"""One sampler interface for rollouts, and its default torch implementation.

``Sampler.sample(prompt_ids, n, params, seed)`` draws ``n`` completions for each tokenised
prompt and returns a ``RolloutBatch``: the token ids, a mask, and the per-token log-probs of the
sampling policy, so PPO/GRPO need no extra forward pass for their "old" log-probs. Backends that
keep their own copy of the weights (vLLM) receive the trainer's weights through
``update_weights`` after each policy update.

``TorchSampler`` runs any Hugging Face causal LM in-process, with the KV cache:

1. Prefill: the *distinct* prompts are left-padded (attention mask 0 on padding, position ids
   counting real tokens only, as HF generate does) and run once, keeping the logits of the last
   position only (``logits_to_keep=1``).
2. Expand: the cache rows are gathered to B*n rows (``DynamicCache.batch_select_indices`` with
   repeated indices), so the n samples of a prompt share its prefill. HF generate with
   ``num_return_sequences`` expands the prompts *before* the prefill and pays it n times.
3. Decode: one token per step for every unfinished row; the token is chosen by
   ``rollout.sampling.choose_tokens`` (temperature, top-k, top-p; see there for where its top-p
   saves HF's full-vocabulary sort). A row finishes on an EOS token (unless ``ignore_eos``), on a
   stop string or at ``max_new_tokens``. Finished rows stop contributing: their outputs are
   ignored, and once at most ``compact_below`` of the rows in the batch are still running the
   finished ones are dropped from the batch and the cache.

Randomness comes from a ``torch.Generator`` seeded with ``seed``: the same call gives the same
tokens whatever the global RNG state, and the global RNG is left untouched.

Stop strings are checked on the decoded text of the newest tokens (a window of the last
``len(stop) + 8`` tokens, enough for any stop string to appear in), every step; the completion
ends with the token at which the stop string first appears, so the stop string is part of the
completion (as with HF's ``stop_strings``; vLLM drops it from the text by default). The token
ids are kept exactly as sampled, which is what the log-probs refer to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch

from rlhfkit.rollout.decode_state import (
    FusedLlamaDecodeState,
    FusedLlamaWeights,
    HFDecodeState,
    fused_llama_supported,
)
from rlhfkit.rollout.sampling import choose_tokens

FINISH_REASONS = ("eos", "stop", "length")
_STOP_WINDOW_EXTRA = 8  # tokens decoded beyond the stop string's length, for multi-byte pieces


@dataclass(frozen=True)
class SamplingParams:
    """How completions are drawn. Validated on construction."""

    max_new_tokens: int = 128
    temperature: float = 1.0  # 0: greedy
    top_p: float = 1.0  # 1: off
    top_k: int = 0  # 0: off
    stop: tuple[str, ...] = ()  # stop strings, matched on decoded text
    ignore_eos: bool = False  # keep sampling through EOS (benchmarks: fixed-length outputs)

    def __post_init__(self):
        if self.max_new_tokens < 1:
            raise ValueError(f"SamplingParams.max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"SamplingParams.temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"SamplingParams.top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"SamplingParams.top_k must be >= 0 (0: off), got {self.top_k}")
        if isinstance(self.stop, str) or any(not isinstance(s, str) or not s for s in self.stop):
            raise ValueError(f"SamplingParams.stop must be a tuple of non-empty strings, got {self.stop!r}")


@dataclass
class RolloutBatch:
    """n samples for each of B prompts, in prompt-major order (sample i belongs to prompt i // n).

    Tensors are on the CPU. T = the longest completion in the batch.
    - prompt_ids: B*n lists, the prompt tokens of each sample (no padding).
    - completion_ids: (B*n, T) long, right-padded with the pad token.
    - completion_mask: (B*n, T) bool, True on generated tokens (the EOS or stop-string end token
      included, as it was sampled).
    - logprobs: (B*n, T) float32, log pi(token) of the sampling policy at each generated token,
      pi = softmax(logits / temperature) over the whole vocabulary, *before* top-k/top-p
      truncation (what importance ratios need); 0 on padding.
    - raw_logprobs: (B*n, T) float32, the same at temperature 1 (log softmax(logits)); None
      where a backend reports only one kind (vLLM away from temperature 1).
    - finish_reasons: "eos", "stop" (a stop string) or "length" per sample.
    - texts: decoded completions (special tokens skipped; a stop string is included).
    """

    prompt_ids: list[list[int]]
    completion_ids: torch.Tensor
    completion_mask: torch.Tensor
    logprobs: torch.Tensor
    raw_logprobs: torch.Tensor | None
    finish_reasons: list[str]
    texts: list[str]
    n: int = 1
    stats: dict = field(default_factory=dict)  # prefill_rows, decode_steps, compactions, seconds

    @property
    def completion_lengths(self) -> torch.Tensor:
        return self.completion_mask.sum(dim=1)  # (B*n,)

    @property
    def prompt_index(self) -> torch.Tensor:
        return torch.arange(len(self.prompt_ids)) // self.n  # (B*n,)


@runtime_checkable
class Sampler(Protocol):
    def sample(self, prompt_ids: list[list[int]], n: int, params: SamplingParams, seed: int) -> RolloutBatch:
        """n completions per prompt; see ``RolloutBatch``."""

    def update_weights(self, model_or_state_dict) -> None:
        """Make the sampler draw from the given weights (a module or a state dict)."""


def check_prompts(prompt_ids, n: int) -> None:
    """Clear errors for malformed input, naming the prompt."""
    if n < 1:
        raise ValueError(f"n (samples per prompt) must be >= 1, got {n}")
    if not prompt_ids:
        raise ValueError("no prompts given")
    for i, ids in enumerate(prompt_ids):
        if not ids:
            raise ValueError(f"prompt {i} is empty: a completion needs at least one prompt token")
        if not all(isinstance(t, int) for t in ids):
            raise ValueError(f"prompt {i} holds non-integer token ids")


def eos_token_ids(model, tokenizer) -> list[int]:
    """EOS ids from the tokenizer and the model's generation config (int or list)."""
    ids = {tokenizer.eos_token_id}
    config_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(config_eos if isinstance(config_eos, (list, tuple)) else [config_eos])
    return sorted(i for i in ids if i is not None)


class TorchSampler:
    """Batched sampling from an in-process HF causal LM with the KV cache (see module doc).

    The sampler holds the trainer's model object itself, so it always samples from the current
    weights; ``update_weights`` loads other weights into that model.
    """

    def __init__(self, model, tokenizer, compact_below: float = 0.75, eos_ids: list[int] | None = None,
                 fused: bool = True):
        self.model = model
        # Llama-architecture models decode through rollout.decode_state's fused step (same maths).
        self.fused_weights = FusedLlamaWeights(model) if fused and fused_llama_supported(model) else None
        self.tokenizer = tokenizer
        self.compact_below = compact_below  # drop finished rows once at most this share still runs
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.eos_ids = list(eos_ids) if eos_ids is not None else eos_token_ids(model, tokenizer)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def update_weights(self, model_or_state_dict) -> None:
        if model_or_state_dict is self.model:
            return
        state = model_or_state_dict
        if isinstance(state, torch.nn.Module):
            state = state.state_dict()
        self.model.load_state_dict(state)

    def sample(self, prompt_ids: list[list[int]], n: int, params: SamplingParams, seed: int) -> RolloutBatch:
        check_prompts(prompt_ids, n)
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                return self._sample(prompt_ids, n, params, seed)
        finally:
            self.model.train(was_training)

    # -- phases ------------------------------------------------------------------------------
    def _prefill(self, unique: list[list[int]]):
        """Run the distinct prompts once, left-padded: (cache, last logits (U, V), mask (U, P),
        next positions (U,))."""
        from transformers import DynamicCache

        width = max(len(p) for p in unique)
        ids = torch.full((len(unique), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(unique), width), dtype=torch.long)
        for row, prompt in enumerate(unique):
            ids[row, width - len(prompt):] = torch.tensor(prompt)
            mask[row, width - len(prompt):] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        # Positions count real tokens only, so a left-padded prompt sees the same positions as
        # the unpadded one; padding gets position 0 (it is masked out anyway).
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)  # (U, P)
        cache = DynamicCache(config=self.model.config)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache,
                         use_cache=True, logits_to_keep=1)
        return out.cache, out.logits[:, -1].float(), mask, positions[:, -1] + 1

    def _sample(self, prompt_ids, n, params: SamplingParams, seed: int) -> RolloutBatch:
        import time

        t0 = time.perf_counter()
        generator = torch.Generator(device=self.device)
        generator.manual_seed(seed)
        first_row: dict[tuple[int, ...], int] = {}
        for prompt in prompt_ids:
            first_row.setdefault(tuple(prompt), len(first_row))
        unique = [list(p) for p in first_row]
        cache, logits, mask, positions = self._prefill(unique)
        # Sample order is prompt-major: every prompt's n samples are consecutive.
        source = torch.tensor([first_row[tuple(p)] for p in prompt_ids for _ in range(n)], device=self.device)
        if not torch.equal(source, torch.arange(len(unique), device=self.device)):
            cache.batch_select_indices(source)  # (U, ...) -> (B*n, ...): prefill shared by the n samples
            logits, mask, positions = logits[source], mask[source], positions[source]
        if self.fused_weights is not None:
            state = FusedLlamaDecodeState(self.model, self.fused_weights, cache, mask, positions,
                                          params.max_new_tokens)
        else:
            state = HFDecodeState(self.model, cache, mask, positions)
        del cache

        total = len(prompt_ids) * n
        steps = params.max_new_tokens
        tokens = torch.full((total, steps), self.pad_id, dtype=torch.long)
        logprobs = torch.zeros((total, steps), dtype=torch.float32)
        raw_logprobs = torch.zeros((total, steps), dtype=torch.float32)
        lengths = [0] * total
        reasons = ["length"] * total
        eos = torch.tensor(self.eos_ids, device=self.device, dtype=torch.long)
        sample_of_row = torch.arange(total)  # batch row -> sample index
        running = torch.ones(total, dtype=torch.bool)  # per batch row, on the CPU
        decode_steps = compactions = 0
        for t in range(steps):
            chosen, lp, raw = choose_tokens(logits, params.temperature, params.top_k, params.top_p, generator)
            chosen_cpu = chosen.cpu()
            rows = running.nonzero().squeeze(1)
            samples = sample_of_row[rows]
            tokens[samples, t] = chosen_cpu[rows]
            logprobs[samples, t] = lp.cpu()[rows]
            raw_logprobs[samples, t] = raw.cpu()[rows]
            for s in samples.tolist():
                lengths[s] = t + 1
            done = torch.zeros_like(running)
            if not params.ignore_eos and len(self.eos_ids):
                hit = torch.isin(chosen, eos).cpu() & running
                for row in hit.nonzero().squeeze(1).tolist():
                    reasons[int(sample_of_row[row])] = "eos"
                done |= hit
            if params.stop:
                for row in self._stop_hits(tokens, sample_of_row, running & ~done, t, params.stop):
                    reasons[int(sample_of_row[row])] = "stop"
                    done[row] = True
            running &= ~done
            if t == steps - 1 or not running.any():
                break
            if done.any() and running.sum() <= self.compact_below * len(running):
                # Drop finished rows from the batch and the cache: later steps cost less.
                keep = running.nonzero().squeeze(1)
                state.select(keep.to(self.device))
                chosen = chosen[keep.to(self.device)]
                sample_of_row, running = sample_of_row[keep], running[keep]
                compactions += 1
            # Finished rows that stay in the batch feed a masked pad token; their outputs are ignored.
            running_dev = running.to(self.device)
            chosen = torch.where(running_dev, chosen, self.pad_id)
            logits = state.step(chosen, running_dev)  # (R, V)
            decode_steps += 1
        return self._assemble(prompt_ids, n, tokens, logprobs, raw_logprobs, lengths, reasons,
                              {"prefill_rows": len(unique), "decode_steps": decode_steps,
                               "compactions": compactions, "seconds": time.perf_counter() - t0})

    def _stop_hits(self, tokens, sample_of_row, candidates, t: int, stops: tuple[str, ...]) -> list[int]:
        """Batch rows whose newest tokens complete a stop string at step t."""
        window = max(len(s) for s in stops) + _STOP_WINDOW_EXTRA
        rows = candidates.nonzero().squeeze(1).tolist()
        if not rows:
            return []
        tails = tokens[sample_of_row[rows], max(0, t + 1 - window): t + 1].tolist()
        texts = self.tokenizer.batch_decode(tails, skip_special_tokens=True)
        return [row for row, text in zip(rows, texts) if any(s in text for s in stops)]

    def _assemble(self, prompt_ids, n, tokens, logprobs, raw_logprobs, lengths, reasons, stats) -> RolloutBatch:
        width = max(lengths)
        lengths_t = torch.tensor(lengths)
        completion_mask = torch.arange(width)[None, :] < lengths_t[:, None]  # (B*n, T)
        completion_ids = tokens[:, :width].masked_fill(~completion_mask, self.pad_id)
        texts = self.tokenizer.batch_decode([row[:k] for row, k in zip(completion_ids.tolist(), lengths)],
                                            skip_special_tokens=True)
        return RolloutBatch(
            prompt_ids=[list(p) for p in prompt_ids for _ in range(n)],
            completion_ids=completion_ids,
            completion_mask=completion_mask,
            logprobs=logprobs[:, :width].masked_fill(~completion_mask, 0.0),
            raw_logprobs=raw_logprobs[:, :width].masked_fill(~completion_mask, 0.0),
            finish_reasons=reasons,
            texts=texts,
            n=n,
            stats=stats,
        )
