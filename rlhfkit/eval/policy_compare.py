"""A trained policy against the policy it started from, judged by a gold scorer.

Both policies answer the same held-out prompts with the same sampling settings and seed; the
gold scorer (a reward function, ``rewards.base`` interface) scores every answer; the win rate is
the share of prompts where the trained policy's answer scores higher (ties count one half), with
a percentile bootstrap 95% CI over prompts, and a length-controlled win rate (AlpacaEval 2's
regression on the length difference, ``eval.winrate``). KL(policy || start) is estimated from
the policy's own samples at temperature 1 (``eval.policy_eval.kl_to_reference``).

Writes ``winrate.json``, ``kl.json`` and ``samples.jsonl`` (both answers per prompt with their
gold scores) into ``out`` (the files of docs/run-format.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Sequence


def sample_answers(model_source, prompts: Sequence, samples: int, max_new_tokens: int, temperature: float,
                   top_p: float, seed: int, dtype: str, progress: bool = True) -> tuple[list[str], object]:
    """``samples`` answers per prompt (prompt-major) from a policy; returns (texts, tokenizer)."""
    from rlhfkit.models import load_causal_lm
    from rlhfkit.progress import progress as bar
    from rlhfkit.rollout.prompts import render_prompt
    from rlhfkit.rollout.sampler import SamplingParams, TorchSampler

    model, tokenizer = load_causal_lm(model_source, dtype=dtype)
    sampler = TorchSampler(model, tokenizer)
    params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p)
    ids = [tokenizer(render_prompt(tokenizer, p), add_special_tokens=False)["input_ids"] for p in prompts]
    texts: list[str] = []
    chunk = 32  # prompts per sampler call: decoding is cheaper per token in wide batches
    with bar(len(ids), f"answers of {Path(str(model_source)).name}", enabled=progress) as advance:
        for start in range(0, len(ids), chunk):
            batch = sampler.sample(ids[start : start + chunk], samples, params, seed + start)
            texts += [t.strip() for t in batch.texts]
            advance(n=len(ids[start : start + chunk]))
    return texts, tokenizer


def cached_answers(cache: Path | None, key: dict, make: Callable[[], list[str]]) -> list[str]:
    """``make()``'s answers, reused from ``cache`` (a JSON file) when it was written for the same
    ``key`` (model, prompts, sampling settings and seed: the sampler is deterministic under them)."""
    from rlhfkit.data.atomic import atomic_write

    if cache is not None and Path(cache).exists():
        stored = json.loads(Path(cache).read_text())
        if stored.get("key") == key:
            return stored["answers"]
    answers = make()
    if cache is not None:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(Path(cache)) as fh:
            fh.write(json.dumps({"key": key, "answers": answers}) + "\n")
    return answers


def compare_policies(start_source, policy_source, prompt_records, gold: Callable, out: Path, samples: int = 1,
                     max_new_tokens: int = 64, temperature: float = 1.0, top_p: float = 1.0, seed: int = 0,
                     dtype: str = "fp32", judge: str = "gold", kl_prompts: int = 16, progress: bool = True,
                     reference_cache: Path | None = None) -> dict:
    """Win rate (with CI and its length-controlled twin) and KL of ``policy_source`` against
    ``start_source`` on ``prompt_records`` (``rollout.prompts.PromptRecord``s).

    With ``samples`` > 1 answers per prompt the bootstrap resamples prompts (all of a prompt's
    comparisons together), so the CI is not narrowed by samples that share a prompt.
    ``reference_cache`` (a JSON file) keeps the starting policy's answers for the next comparison
    with the same prompts and settings, e.g. the next round of a loop.
    """
    from rlhfkit.data.atomic import atomic_write
    from rlhfkit.eval.winrate import length_controlled_win_rate, win_outcomes, win_rate

    out = Path(out)
    prompts = [r.prompt for r in prompt_records]
    repeated = [p for p in prompts for _ in range(samples)]
    clusters = [i for i in range(len(prompts)) for _ in range(samples)]
    ours, _ = sample_answers(policy_source, prompts, samples, max_new_tokens, temperature, top_p, seed, dtype, progress)
    key = {"model": str(start_source), "prompts": [str(p) for p in prompts], "samples": samples,
           "max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p, "seed": seed, "dtype": dtype}
    theirs = cached_answers(reference_cache, key, lambda: sample_answers(
        start_source, prompts, samples, max_new_tokens, temperature, top_p, seed, dtype, progress)[0])
    ours_gold = [float(x) for x in gold(repeated, ours)]
    theirs_gold = [float(x) for x in gold(repeated, theirs)]
    rate = win_rate(ours_gold, theirs_gold, seed=seed, clusters=clusters)
    lc = length_controlled_win_rate(win_outcomes(ours_gold, theirs_gold), [len(t.split()) for t in ours],
                                    [len(t.split()) for t in theirs], seed=seed, clusters=clusters)
    result = {"win_rate": rate.rate, "ci95": [rate.ci_low, rate.ci_high], "n": rate.n, "prompts": len(prompts),
              "samples_per_prompt": samples, "ci_resamples": "prompts", "wins": rate.wins,
              "ties": rate.ties, "losses": rate.losses, "lc_win_rate": lc.rate, "lc_ci95": [lc.ci_low, lc.ci_high],
              "judge": judge, "policy": str(policy_source), "reference": str(start_source),
              "gold_mean": sum(ours_gold) / len(ours_gold), "reference_gold_mean": sum(theirs_gold) / len(theirs_gold),
              "mean_words": sum(len(t.split()) for t in ours) / len(ours),
              "reference_mean_words": sum(len(t.split()) for t in theirs) / len(theirs)}
    with atomic_write(out / "samples.jsonl") as fh:
        for p, a, b, sa, sb in zip(repeated, ours, theirs, ours_gold, theirs_gold):
            prompt = p if isinstance(p, str) else [m if isinstance(m, dict) else m.model_dump() for m in p]
            fh.write(json.dumps({"prompt": prompt, "policy": a, "reference": b, "policy_gold": sa,
                                 "reference_gold": sb}) + "\n")
    if kl_prompts:
        result_kl = policy_kl(policy_source, start_source, prompts[:kl_prompts], max_new_tokens, seed)
        with atomic_write(out / "kl.json") as fh:
            fh.write(json.dumps(result_kl, indent=2) + "\n")
        result["kl_per_sequence"] = result_kl["kl_per_sequence"]
    with atomic_write(out / "winrate.json") as fh:
        fh.write(json.dumps(result, indent=2) + "\n")
    return result


def policy_kl(policy_source, start_source, prompts: Sequence, max_new_tokens: int, seed: int) -> dict:
    """KL(policy || start) per sequence from the policy's own samples (fp32, temperature 1)."""
    from rlhfkit.eval.policy_eval import kl_to_reference
    from rlhfkit.models import load_causal_lm
    from rlhfkit.rollout.prompts import render_prompt

    policy, tokenizer = load_causal_lm(policy_source, dtype="fp32")
    reference, _ = load_causal_lm(start_source, dtype="fp32")
    ids = [tokenizer(render_prompt(tokenizer, p), add_special_tokens=False)["input_ids"] for p in prompts]
    return kl_to_reference(policy, reference, tokenizer, ids, max_new_tokens, seed=seed)
