"""Sample K responses per prompt from a causal LM, batched, with the KV cache.

Prompts are rendered with the tokenizer's chat template and sampled with ``TorchSampler``
(rollout/sampler.py): one call serves a batch of prompts x K samples, and the K samples of a
prompt share its prefill. A sample that comes back empty (the model ended at once) is resampled
up to ``max_retries`` times and dropped after that: an empty response is not a valid candidate.

Each sampler call gets its own seed, derived from ``cfg.seed`` and the call's number, so a run
is reproducible and does not depend on the global torch RNG.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from rlhfkit.rollout.prompts import PromptRecord, render_prompt
from rlhfkit.rollout.sampler import SamplingParams, TorchSampler
from rlhfkit.schema import PreferenceItem, Provenance, Response, utc_now


@dataclass
class SamplingConfig:
    n: int = 4
    max_new_tokens: int = 128
    temperature: float = 0.8
    top_p: float = 0.95
    batch_size: int = 8  # prompts per generate call (each expanded to n samples)
    seed: int = 0
    max_retries: int = 2

    def as_provenance(self) -> dict:
        return {"temperature": self.temperature, "top_p": self.top_p,
                "max_new_tokens": self.max_new_tokens, "seed": self.seed}


@dataclass
class GenerationStats:
    prompts: int = 0
    responses: int = 0
    dropped_empty: int = 0
    new_tokens: int = 0
    seconds: float = 0.0
    token_counts: list[int] = field(default_factory=list)

    @property
    def tokens_per_second(self) -> float:
        return self.new_tokens / self.seconds if self.seconds else 0.0


def _sample_batch(sampler: TorchSampler, texts: list[str], cfg: SamplingConfig, seed: int
                  ) -> list[list[tuple[str, int]]]:
    """For each prompt text, cfg.n (response text, new-token count) samples; the count leaves
    out the EOS token that ended the sample."""
    tokenizer = sampler.tokenizer
    prompt_ids = [tokenizer.encode(text, add_special_tokens=False) for text in texts]
    params = SamplingParams(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p)
    batch = sampler.sample(prompt_ids, cfg.n, params, seed=seed)
    lengths = batch.completion_lengths.tolist()
    results: list[list[tuple[str, int]]] = [[] for _ in texts]
    for row, (text, length, reason) in enumerate(zip(batch.texts, lengths, batch.finish_reasons)):
        results[row // cfg.n].append((text.strip(), length - (reason == "eos")))
    return results


def generate_items(
    model,
    tokenizer,
    prompts: list[PromptRecord],
    cfg: SamplingConfig,
    model_name: str,
    model_version: str | None = None,
    on_item: Callable[[PreferenceItem], None] | None = None,
    on_batch: Callable[[int], None] | None = None,
    stats: GenerationStats | None = None,
) -> list[PreferenceItem]:
    """One ``PreferenceItem`` (no annotations yet) per prompt with up to ``cfg.n`` responses."""
    stats = stats or GenerationStats()
    provenance = Provenance(model=model_name, model_version=model_version, sampling=cfg.as_provenance())
    items: list[PreferenceItem] = []
    sampler = TorchSampler(model, tokenizer)
    calls = 0

    def draw(texts: list[str]) -> list[list[tuple[str, int]]]:
        nonlocal calls
        calls += 1
        return _sample_batch(sampler, texts, cfg, seed=cfg.seed * 1_000_003 + calls)

    for start in range(0, len(prompts), cfg.batch_size):
        batch = prompts[start : start + cfg.batch_size]
        texts = [render_prompt(tokenizer, p.prompt) for p in batch]
        t0 = time.perf_counter()
        samples = draw(texts)
        for _ in range(cfg.max_retries):
            # Resample only the prompts that lost samples to an immediate end of text.
            short = [i for i, s in enumerate(samples) if sum(1 for t, _ in s if t) < cfg.n]
            if not short:
                break
            extra = draw([texts[i] for i in short])
            for i, more in zip(short, extra):
                kept = [s for s in samples[i] if s[0]]
                samples[i] = kept + [s for s in more if s[0]][: cfg.n - len(kept)]
        stats.seconds += time.perf_counter() - t0
        for record, sample in zip(batch, samples):
            kept = [(t, n) for t, n in sample if t][: cfg.n]
            stats.dropped_empty += cfg.n - len(kept)
            stats.new_tokens += sum(n for _, n in sample)
            stats.token_counts.extend(n for _, n in kept)
            if len(kept) < 2:
                continue  # fewer than two candidates cannot be compared
            stamp = provenance.model_copy(update={"created_at": utc_now()})
            item = PreferenceItem(
                prompt=record.prompt,
                responses=[Response(text=t, provenance=stamp) for t, _ in kept],
                metadata={"prompt_id": record.id},
            )
            items.append(item)
            stats.responses += len(kept)
            if on_item:
                on_item(item)
        stats.prompts += len(batch)
        if on_batch:
            on_batch(len(batch))
    return items
