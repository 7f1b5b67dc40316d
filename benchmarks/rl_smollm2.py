"""Does online RL make SmolLM2-135M-Instruct better? Before/after on held-out data, with CIs.

Two demonstrations (issue: online RL, section 5):

- ``arithmetic``: an algorithm (GRPO by default) trains on generated arithmetic word problems
  (rlhfkit.rewards.arithmetic, train split) with the exact-match reward; exact-match accuracy on
  held-out problems (the disjoint test split) is measured before and after with greedy decoding,
  and the paired difference gets a bootstrap 95% CI over problems.
- ``reward-model``: an algorithm (PPO, RLOO, RAFT, GRPO) optimises a trained reward model's score
  on HH prompts; the reward model's mean score on held-out HH test prompts (sampled answers, the
  same seed before and after) is compared the same way, and KL(policy || start) is reported.

Run from the repository root (fp32 on a CPU without native bf16):

    OMP_NUM_THREADS=2 python benchmarks/rl_smollm2.py arithmetic --algo grpo --steps 40
    OMP_NUM_THREADS=2 python benchmarks/rl_smollm2.py reward-model --algo ppo --reward-model runs/rm-hh --steps 30

Each run prints one JSON line with the settings, minutes, the before/after numbers with CIs, and
the KL; benchmarks/RESULTS.md records them with the command.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

HH = Path(__file__).resolve().parents[2] / "shared" / "data" / "hh-harmless"


def paired_ci(before: list[float], after: list[float], seed: int = 0, n_boot: int = 4000) -> tuple[float, float, float]:
    """Mean of after - before with a percentile bootstrap 95% CI over the paired items."""
    d = np.asarray(after, dtype=float) - np.asarray(before, dtype=float)
    rng = np.random.default_rng(seed)
    boots = d[rng.integers(0, len(d), size=(n_boot, len(d)))].mean(axis=1)
    return float(d.mean()), float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))


def answers(model, tokenizer, prompt_ids: list[list[int]], max_new_tokens: int, temperature: float, seed: int,
            per_prompt: int = 1) -> list[str]:
    """``per_prompt`` answers to each prompt, grouped by prompt (prompt 0's answers first)."""
    from rlhfkit.progress import progress
    from rlhfkit.rollout.sampler import SamplingParams, TorchSampler

    sampler = TorchSampler(model, tokenizer)
    params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature)
    chunk = max(1, 16 // per_prompt)
    out = []
    with progress(len(prompt_ids), "answering held-out prompts") as advance:
        for start in range(0, len(prompt_ids), chunk):
            out += sampler.sample(prompt_ids[start : start + chunk], per_prompt, params, seed + start).texts
            advance(n=min(chunk, len(prompt_ids) - start))
    return out


def per_prompt_means(values: list[float], per_prompt: int) -> list[float]:
    """The mean of each prompt's ``per_prompt`` consecutive values: the unit the paired CI resamples."""
    if len(values) % per_prompt:
        raise ValueError(f"{len(values)} values do not split into groups of {per_prompt}")
    return np.asarray(values, dtype=float).reshape(-1, per_prompt).mean(axis=1).tolist()


def with_instruction(prompt: str, instruction: str | None) -> str:
    """The problem with the shipped instruction replaced by ``instruction`` (None keeps it)."""
    from rlhfkit.rewards.arithmetic import INSTRUCTION

    if instruction is None:
        return prompt
    if not prompt.endswith(INSTRUCTION):
        raise ValueError(f"prompt does not end with the shipped instruction: {prompt[-80:]!r}")
    return prompt[: -len(INSTRUCTION)] + instruction


def train(args, prompts, reward_fn, out: Path):
    from rlhfkit.models import load_causal_lm
    from rlhfkit.trainers.config import RLConfig
    from rlhfkit.trainers.registry import build_online

    policy, tokenizer = load_causal_lm(args.model, dtype="fp32")
    cfg = RLConfig(algo=args.algo, model=args.model, lr=args.lr, lr_schedule="constant", batch_size=args.prompts_per_step,
                   group_size=args.group_size, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                   kl_coef=args.kl_coef, max_steps=args.steps, seed=args.seed, dtype=args.dtype, max_length=256,
                   save_every=args.save_every, raft_keep=args.raft_keep, kl_target=args.kl_target,
                   aggregation=args.aggregation, advantage_scale=args.advantage_scale)
    trainer = build_online(cfg, prompts, out, policy=policy, tokenizer=tokenizer, reward_fn=reward_fn)
    history = trainer.train()
    return trainer, history


def run_arithmetic(args) -> dict:
    from rlhfkit.models import load_causal_lm
    from rlhfkit.rewards.arithmetic import generate_problems
    from rlhfkit.rewards.base import load_reward
    from rlhfkit.rewards.rules import numeric_exact_match
    from rlhfkit.trainers.online import prompt_set

    train_problems = generate_problems("train", args.train_n, seed=args.seed)
    test_problems = generate_problems("test", args.test_n, seed=args.seed)
    base, tokenizer = load_causal_lm(args.model, dtype=args.dtype)
    train_set = prompt_set([with_instruction(p["prompt"], args.instruction) for p in train_problems], tokenizer, 256,
                           [{"answer": p["answer"]} for p in train_problems])
    test_prompts = [with_instruction(p["prompt"], args.instruction) for p in test_problems]
    test_ids = prompt_set(test_prompts, tokenizer, 256).prompt_ids
    gold = [p["answer"] for p in test_problems]

    def accuracy(model):
        texts = answers(model, tokenizer, test_ids, args.max_new_tokens, 0.0, args.seed)  # greedy
        return numeric_exact_match([], texts, answer=gold), texts

    # training reward: exact match, plus (optionally) a small bonus for the requested '#### N'
    # line, so that groups with no right answer still carry a signal; the evaluation is exact match only
    reward = load_reward([{"source": "rlhfkit.rewards.rules:numeric_exact_match", "weight": 1.0}] + (
        [{"source": "rlhfkit.rewards.rules:format_regex", "weight": args.format_weight,
          "kwargs": {"pattern": r"(^|\n)#### *-?[\d,]+(\.\d+)? *$"}}] if args.format_weight else []))
    before, before_texts = accuracy(base)
    del base
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        trainer, history = train(args, train_set, reward, Path(args.out or tmp))
        minutes = (time.perf_counter() - t0) / 60
        after, after_texts = accuracy(trainer.policy)
    diff, lo, hi = paired_ci(before, after, args.seed)
    return {"task": "arithmetic exact match (held-out)", "n_test": len(gold), "before": float(np.mean(before)),
            "after": float(np.mean(after)), "difference": diff, "difference_ci95": [lo, hi],
            "train_reward_first5": float(np.mean([h["reward/mean"] for h in history[:5]])),
            "train_reward_last5": float(np.mean([h["reward/mean"] for h in history[-5:]])),
            "format_weight": args.format_weight, "temperature": args.temperature, "instruction": args.instruction,
            "format_rate_before": float(np.mean([bool(re.search(r"(^|\n)#### *-?[\d,]", t)) for t in before_texts])),
            "format_rate_after": float(np.mean([bool(re.search(r"(^|\n)#### *-?[\d,]", t)) for t in after_texts])),
            "kl_last": history[-1]["kl/mean"], "minutes_training": minutes,
            "examples_after": after_texts[:3]}


def cached_baseline(path: str | None, key: dict, compute) -> list[float]:
    """The starting policy's per-prompt scores: read from ``path`` when it holds the same ``key``
    (the sampler is deterministic under a seed, so the PPO, RLOO and RAFT runs share one), else
    computed and written there."""
    if path and Path(path).exists():
        saved = json.loads(Path(path).read_text())
        if saved.get("key") == key:
            print(f"starting policy's scores read from {path}", file=sys.stderr)
            return saved["scores"]
    scores = compute()
    if path:
        Path(path).write_text(json.dumps({"key": key, "scores": scores}))
    return scores


def run_reward_model(args) -> dict:
    from rlhfkit.data import load_pairs
    from rlhfkit.eval.policy_compare import policy_kl
    from rlhfkit.models import load_causal_lm
    from rlhfkit.rewards.model_reward import ModelReward
    from rlhfkit.trainers.online import prompt_set

    rm = ModelReward.load(args.reward_model, max_length=256)
    train_prompts = list(dict.fromkeys(p.prompt for p in load_pairs(HH / "train.jsonl")))[: args.train_n]
    test_prompts = list(dict.fromkeys(p.prompt for p in load_pairs(HH / "test.jsonl")))[: args.test_n]
    base, tokenizer = load_causal_lm(args.model, dtype=args.dtype)
    train_set = prompt_set(train_prompts, tokenizer, 256)
    test_ids = prompt_set(test_prompts, tokenizer, 256).prompt_ids

    def scores(model):
        k = args.eval_samples
        texts = answers(model, tokenizer, test_ids, args.max_new_tokens, 1.0, args.seed, per_prompt=k)
        return per_prompt_means(rm([p for p in test_prompts for _ in range(k)], texts), k)

    key = {"model": args.model, "reward_model": str(Path(args.reward_model).resolve()), "test_n": len(test_prompts),
           "eval_samples": args.eval_samples, "max_new_tokens": args.max_new_tokens, "seed": args.seed,
           "dtype": args.dtype}
    before = cached_baseline(args.baseline_cache, key, lambda: scores(base))
    del base
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        trainer, history = train(args, train_set, rm, out)
        minutes = (time.perf_counter() - t0) / 60
        after = scores(trainer.policy)
        trainer.save(out / "final")
        kl = policy_kl(out / "final", args.model, test_prompts[:32], args.max_new_tokens, args.seed)
    diff, lo, hi = paired_ci(before, after, args.seed)
    return {"task": "HH reward-model score (held-out test prompts)", "n_test": len(test_prompts),
            "eval_samples_per_prompt": args.eval_samples,
            "before": float(np.mean(before)), "after": float(np.mean(after)), "difference": diff,
            "difference_ci95": [lo, hi], "kl_per_sequence": kl["kl_per_sequence"], "kl_stderr": kl["kl_stderr"],
            "train_reward_first5": float(np.mean([h["reward/mean"] for h in history[:5]])),
            "train_reward_last5": float(np.mean([h["reward/mean"] for h in history[-5:]])),
            "minutes_training": minutes}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("task", choices=["arithmetic", "reward-model"])
    p.add_argument("--algo", default="grpo", choices=["grpo", "rloo", "ppo", "raft"])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--reward-model", default="runs/rm-hh")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--prompts-per-step", type=int, default=4)
    p.add_argument("--group-size", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-6)
    p.add_argument("--kl-coef", type=float, default=0.02)
    p.add_argument("--aggregation", default="sequence_mean", choices=["sequence_mean", "token_mean", "constant"],
                   help="loss aggregation over tokens (constant = Dr. GRPO's, free of the length bias)")
    p.add_argument("--advantage-scale", default="std", choices=["std", "none"],
                   help="(grpo) divide group-centred rewards by the group std, or not (Dr. GRPO)")
    p.add_argument("--kl-target", type=float, default=0.0,
                   help="(ppo) adaptive KL controller's target, nats per sequence (0 = a fixed --kl-coef)")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature of the training rollouts")
    p.add_argument("--format-weight", type=float, default=0.0,
                   help="(arithmetic) weight of a bonus for the requested '#### N' answer line in the training reward")
    p.add_argument("--instruction", default=None,
                   help="(arithmetic) replace the shipped instruction after each problem, in training and test "
                   "prompts alike")
    p.add_argument("--eval-samples", type=int, default=1,
                   help="(reward-model) sampled answers per held-out prompt; their mean is the paired unit")
    p.add_argument("--baseline-cache", default=None,
                   help="(reward-model) JSON file that keeps the starting policy's held-out scores for runs with "
                   "the same settings")
    p.add_argument("--raft-keep", type=float, default=0.25)
    p.add_argument("--train-n", type=int, default=400)
    p.add_argument("--test-n", type=int, default=200)
    p.add_argument("--dtype", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-every", type=int, default=0)
    p.add_argument("--out", default=None, help="keep the run folder here (default: a temporary one)")
    args = p.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    from rlhfkit.models.loading import resolve_dtype_name

    args.dtype = resolve_dtype_name(args.dtype)
    t0 = time.perf_counter()
    result = run_arithmetic(args) if args.task == "arithmetic" else run_reward_model(args)
    result.update(algo=args.algo, aggregation=args.aggregation, advantage_scale=args.advantage_scale,
                  kl_target=args.kl_target, steps=args.steps, prompts_per_step=args.prompts_per_step,
                  group_size=args.group_size, lr=args.lr, kl_coef=args.kl_coef, max_new_tokens=args.max_new_tokens,
                  dtype=args.dtype, seed=args.seed, minutes_total=(time.perf_counter() - t0) / 60)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
