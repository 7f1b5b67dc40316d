"""Our TorchSampler against Hugging Face ``model.generate`` on SmolLM2-135M-Instruct, one process.

Both sides get the same model object, dtype (``resolve_dtype_name("auto")``: fp32 on a CPU
without native bf16), prompts (chat template applied) and sampling settings (temperature 0.8,
top-p 0.95), and both generate exactly ``--new-tokens`` tokens per sample: ours with
``ignore_eos``, HF with ``eos_token_id=None`` (no EOS stopping; the same maths as ignoring EOS,
with no extra logits processor). Cases:

  a) 8 prompts x 1 sample x 64 new tokens
  b) 2 prompts x 8 samples x 64 new tokens (HF: ``num_return_sequences=8``)

Each case is warmed up once per side, then timed ``--repeats`` times, alternating HF and ours
so that load from other jobs on the machine hits both alike. Tokens/s = generated tokens / wall
time of the whole call (prefill included), best and median over the repeats.

    nice -n 5 .venv/bin/python benchmarks/rollout.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

PROMPTS = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "Explain gravity to a ten-year-old.",
    "List three fruits that are high in vitamin C.",
    "How do I boil an egg?",
    "Tell me a short joke about computers.",
    "What is the difference between weather and climate?",
    "Describe a cat in two sentences.",
]


def main() -> None:
    import torch

    from rlhfkit.models import load_causal_lm, resolve_dtype_name
    from rlhfkit.rollout.prompts import render_prompt
    from rlhfkit.rollout.sampler import SamplingParams, TorchSampler

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    dtype = resolve_dtype_name("auto")
    model, tok = load_causal_lm(args.model, dtype=dtype)
    print(f"model {args.model} dtype {dtype} torch threads {torch.get_num_threads()} torch {torch.__version__}")
    sampler = TorchSampler(model, tok)
    params = SamplingParams(max_new_tokens=args.new_tokens, temperature=0.8, top_p=0.95, ignore_eos=True)
    tok.padding_side = "left"

    def ours(prompts, n, seed):
        ids = [tok.encode(render_prompt(tok, p), add_special_tokens=False) for p in prompts]
        batch = sampler.sample(ids, n, params, seed=seed)
        return int(batch.completion_mask.sum())

    def hf(prompts, n, seed):
        enc = tok([render_prompt(tok, p) for p in prompts], return_tensors="pt", padding=True,
                  add_special_tokens=False)
        torch.manual_seed(seed)
        with torch.inference_mode():
            out = model.generate(**enc, do_sample=True, temperature=0.8, top_p=0.95, top_k=None,
                                 max_new_tokens=args.new_tokens, num_return_sequences=n,
                                 eos_token_id=None, pad_token_id=tok.pad_token_id)
        return (out.shape[1] - enc["input_ids"].shape[1]) * out.shape[0]

    cases = {"a) 8 prompts x 1 sample": (PROMPTS, 1), "b) 2 prompts x 8 samples": (PROMPTS[:2], 8)}
    for name, (prompts, n) in cases.items():
        expected = len(prompts) * n * args.new_tokens
        rates: dict[str, list[float]] = {"hf": [], "ours": []}
        for rep in range(args.repeats + 1):  # repetition 0 is the warm-up
            for side, fn in (("hf", hf), ("ours", ours)):
                t0 = time.perf_counter()
                produced = fn(prompts, n, seed=rep)
                seconds = time.perf_counter() - t0
                if produced != expected:
                    raise SystemExit(f"{side} generated {produced} tokens, expected {expected}")
                if rep:
                    rates[side].append(produced / seconds)
        hf_med, ours_med = statistics.median(rates["hf"]), statistics.median(rates["ours"])
        print(f"{name} x {args.new_tokens} new tokens ({expected} tokens a call)")
        for side in ("hf", "ours"):
            print(f"  {side:5s} tokens/s: " + ", ".join(f"{r:.1f}" for r in rates[side])
                  + f"  (median {statistics.median(rates[side]):.1f}, best {max(rates[side]):.1f})")
        print(f"  ratio ours/hf: median {ours_med / hf_med:.2f}, best {max(rates['ours']) / max(rates['hf']):.2f}")


if __name__ == "__main__":
    main()
