"""rlhfkit GRPO vs TRL's GRPOTrainer, side by side in one process: seconds per step and reward curves.

How to run, from the repository root (SmolLM2-135M-Instruct, 2 prompts x 8 completions of up to
48 tokens, 6 steps, length reward):

    flock /tmp/rlhfkit-heavy.lock env OMP_NUM_THREADS=2 HF_HUB_OFFLINE=1 PYTHONPATH=. \\
        .venv/bin/python benchmarks/grpo.py --model smollm2-135m --steps 6

(``--reward exact`` scores the arithmetic answers instead; at the default lr 1e-6 six steps barely
move the policy, so a larger ``--lr`` such as 1e-5 is the stronger test that the curves move alike.)

Quick end-to-end check with a tiny random model that uses SmolLM2's tokenizer (about a minute;
``rlhfkit.models.save_tiny(folder)``, with the byte tokenizer, works too):

    .venv/bin/python -c "from rlhfkit.models import tiny_causal_lm as t; m, k = t(vocab='smollm2'); \\
        m.save_pretrained('/tmp/tiny-smollm2'); k.save_pretrained('/tmp/tiny-smollm2')"
    .venv/bin/python benchmarks/grpo.py --model /tmp/tiny-smollm2 --steps 2

What is the same on both sides: the weights (both load the same folder; each trainer keeps its own
frozen reference copy), the prompts of every step (TRL gets a dataset in our rollout order and
``shuffle_dataset=False``), the chat rendering (checked: identical prompt token ids), G completions
per prompt, P prompts per step in one micro-batch, the max completion length, the reward function
(one rule, adapted to TRL's ``reward_funcs`` signature), the dtype (``--dtype auto``: fp32 on a CPU
without native bf16), AdamW with the same learning rate, constant schedule, no warm-up, no weight
decay, gradient clipping 1.0, beta, temperature 1, no top-p/top-k, clip epsilon 0.2, one update per
rollout (``num_iterations=1``), no activation checkpointing (TRL 1.x turns it on by default; it is
set False here), no vLLM, TRL on ``use_cpu=True``, ``bf16`` only where our dtype is bf16.

The loss is aligned to TRL's defaults: ``loss_type="dapo"`` (per-token losses summed over the whole
step and divided by its number of completion tokens) is our ``aggregation="token_mean"``;
``scale_rewards="group"`` (``(r - mean_g) / (std_g + 1e-4)``, sample std) is our
``advantage_scale="std"``. The KL anchor: TRL 1.16 puts ``beta * k3 * ratio`` per token in the loss
(``use_bias_correction_kl=True``, its default); on-policy (ratio 1, ``num_iterations=1``) that term's
gradient is ``beta * (logp - ref_logp) * grad logp``, the reverse-KL gradient, which is exactly the
gradient of our ``kl_estimator="k2"`` in the loss (``rlhfkit/losses/kl.py``; checked in
``tests/test_benchmarks_import.py``), so ours runs with k2 here. Our GRPO default, k3 without the
ratio, would follow the forward KL's gradient instead. Only the logged KL value differs.

Timing: ours is the loop's own ``s_per_step`` (rollout, reference pass, scoring, forward, backward,
optimiser step); TRL's is the wall time between consecutive ``on_step_end`` callbacks (the same
work, plus its per-step logging). The first step of each is warm-up and left out of the mean.

Reward curves: the mean reward of each step's P x G completions. Both start from the same weights
with the same seed, but the two samplers draw different random numbers, so the curves can agree only
within sampling noise, not token for token.
"""

from __future__ import annotations

import argparse
import gc
import math
import shutil
import statistics
import tempfile
import time

VARIANTS = ("ours", "trl")
REWARDS = ("length", "exact")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m", help="alias or HF folder (both trainers load it)")
    ap.add_argument("--steps", type=int, default=6, help="optimiser steps per trainer; the first is warm-up")
    ap.add_argument("--prompts-per-step", type=int, default=2, help="prompts per step (each with G completions)")
    ap.add_argument("--group-size", type=int, default=8, help="completions per prompt (G)")
    ap.add_argument("--max-new-tokens", type=int, default=48, help="max completion tokens")
    ap.add_argument("--lr", type=float, default=1e-6, help="AdamW learning rate (constant)")
    ap.add_argument("--beta", type=float, default=0.04, help="KL coefficient (k3 in the loss)")
    ap.add_argument("--temperature", type=float, default=1.0, help="sampling temperature")
    ap.add_argument("--reward", choices=REWARDS, default="length",
                    help="length: triangular reward peaking at --length-target words (a signal from step 1); "
                         "exact: exact match of the final number with the arithmetic answer")
    ap.add_argument("--length-target", type=int, default=20, help="words at which the length reward is 1")
    ap.add_argument("--dtype", default="auto", help="fp32 | bf16 | auto (bf16 only where the CPU has it natively)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variants", default="ours,trl", help="comma-separated subset of: ours, trl (run in this order)")
    return ap


def parse_args(argv=None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        raise SystemExit(f"--variants: unknown {unknown or 'empty'}; choose from {', '.join(VARIANTS)}")
    if args.steps < 2:
        raise SystemExit("--steps must be >= 2: the first step is warm-up and is not timed")
    if args.group_size < 2 or args.prompts_per_step < 1:
        raise SystemExit("--group-size must be >= 2 and --prompts-per-step >= 1")
    args.variants = variants
    return args


# --------------------------------------------------------------------------- shared inputs
class RecordedRule:
    """The reward rule both trainers call, recording each call's prompts and rewards (one call = one step)."""

    def __init__(self, kind: str, length_target: int):
        import functools

        from rlhfkit.rewards import rules

        self.rule = (functools.partial(rules.length_target, target=length_target, unit="words")
                     if kind == "length" else rules.numeric_exact_match)
        self.calls: list[tuple[list, list[float]]] = []

    def __call__(self, prompts, completions, **metadata) -> list[float]:
        rewards = [float(r) for r in self.rule(prompts, completions, **metadata)]
        self.calls.append(([_user_text(p) for p in prompts], rewards))
        return rewards

    def trl_adapter(self):
        """TRL's convention: keyword arguments, conversational completions as message lists, dataset
        columns (here ``answer``) as lists, plus trainer hooks our rules do not use."""
        def reward(prompts, completions, completion_ids=None, trainer_state=None, log_extra=None,
                   log_metric=None, environments=None, **columns):
            texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
            return self(prompts, texts, **columns)

        return reward


def _user_text(prompt) -> str:
    return prompt if isinstance(prompt, str) else prompt[-1]["content"]


def arithmetic_problems(args, n_steps: int) -> tuple[list[dict], list[dict]]:
    """(problems, the same problems in the order our trainer's rollouts take them, step by step).
    Our trainer gets the first list and orders it itself; TRL gets the second with a sequential
    sampler, so both see the same prompts at every step."""
    from types import SimpleNamespace

    from rlhfkit.rewards.arithmetic import generate_problems
    from rlhfkit.trainers.online import OnlineTrainer

    problems = generate_problems("train", n_steps * args.prompts_per_step, seed=args.seed)
    # the rollout order is a pure function of (number of prompts, prompts per rollout, seed, k)
    schedule = SimpleNamespace(prompts=SimpleNamespace(prompt_ids=problems), prompts_per_rollout=args.prompts_per_step,
                               cfg=SimpleNamespace(seed=args.seed))
    order = [i for k in range(n_steps) for i in OnlineTrainer.prompts_for_rollout(schedule, k)]
    return problems, [problems[i] for i in order]


def messages(problem: dict) -> list[dict]:
    return [{"role": "user", "content": problem["prompt"]}]


def load_policy(folder):
    """fp32 weights whatever the dtype: bf16 runs as autocast over fp32 master weights on both sides."""
    from rlhfkit.models import load_causal_lm

    return load_causal_lm(folder, dtype="fp32")


# --------------------------------------------------------------------------- the two trainers
def run_ours(folder, problems: list[dict], args, dtype: str, reward: RecordedRule) -> dict:
    from rlhfkit.trainers.config import RLConfig
    from rlhfkit.trainers.online import prompt_set
    from rlhfkit.trainers.registry import build_online

    policy, tokenizer = load_policy(folder)
    cfg = RLConfig(
        algo="grpo", model=str(folder), lr=args.lr, lr_schedule="constant", warmup_steps=0, weight_decay=0.0,
        max_grad_norm=1.0, batch_size=args.prompts_per_step, grad_accum=1, max_steps=args.steps,
        max_length=4096, group_size=args.group_size, max_new_tokens=args.max_new_tokens,
        temperature=args.temperature, top_p=1.0, top_k=0, kl_coef=args.beta, kl_estimator="k2",
        kl_placement="loss", clip_eps=0.2, ppo_epochs=1, aggregation="token_mean", advantage_scale="std",
        reward_normalize="none", dtype=dtype, seed=args.seed, progress=False, resume=False, sample_every=0)
    prompts = prompt_set([messages(p) for p in problems], tokenizer, cfg.max_length,
                         [{"answer": p["answer"]} for p in problems])
    trainer = build_online(cfg, prompts, None, policy=policy, tokenizer=tokenizer, reward_fn=reward)
    history = trainer.train()
    out = {"seconds": [h["s_per_step"] for h in history], "prompt_ids": prompts.prompt_ids[0],
           "settings": {"aggregation": cfg.aggregation, "advantage_scale": cfg.advantage_scale,
                        "kl": f"{cfg.kl_estimator} in the {cfg.kl_placement}", "beta": cfg.kl_coef,
                        "clip_eps": cfg.clip_eps, "ppo_epochs": cfg.ppo_epochs, "dtype": cfg.dtype}}
    del trainer, policy
    return out


def run_trl(folder, problems: list[dict], args, dtype: str, reward: RecordedRule, probe: dict) -> dict:
    """``problems`` in the order TRL takes them; ``probe``: the problem whose prompt token ids are
    compared with ours (our run reports its first problem's, so pass that one)."""
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    policy, tokenizer = load_policy(folder)
    data = Dataset.from_list([{"prompt": messages(p), "answer": p["answer"]} for p in problems])
    ends: list[float] = []

    class StepClock(TrainerCallback):
        def on_train_begin(self, *a, **k):
            ends.append(time.perf_counter())

        def on_step_end(self, *a, **k):
            ends.append(time.perf_counter())

    G, P = args.group_size, args.prompts_per_step
    scratch = tempfile.mkdtemp(prefix="trl-grpo-bench-")  # TRL wants an output folder; nothing is saved
    # TRL 1.x turns activation checkpointing on by default (memory for speed); ours does not checkpoint.
    # transformers 5 renamed gradient_checkpointing to activation_checkpointing (the old name warns)
    renamed = "activation_checkpointing" in GRPOConfig.__dataclass_fields__
    no_checkpointing = {"activation_checkpointing" if renamed else "gradient_checkpointing": False}
    cfg = GRPOConfig(
        output_dir=scratch, per_device_train_batch_size=P * G,
        gradient_accumulation_steps=1, num_generations=G, max_completion_length=args.max_new_tokens,
        learning_rate=args.lr, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0,
        beta=args.beta, temperature=args.temperature, top_p=1.0, top_k=0, epsilon=0.2, num_iterations=1,
        loss_type="dapo", scale_rewards="group", use_bias_correction_kl=True, max_steps=args.steps,
        shuffle_dataset=False, seed=args.seed,
        **no_checkpointing, use_vllm=False, use_cpu=True, bf16=dtype == "bf16", report_to=[],
        logging_steps=1, save_strategy="no", disable_tqdm=True, dataloader_num_workers=0)
    trainer = GRPOTrainer(model=policy, reward_funcs=reward.trl_adapter(), args=cfg, train_dataset=data,
                          processing_class=tokenizer, callbacks=[StepClock()])
    prompt_ids = list(trainer._tokenize_prompts([messages(probe)])[0][0])
    trainer.train()
    out = {"seconds": [b - a for a, b in zip(ends, ends[1:])], "prompt_ids": prompt_ids,
           "settings": {"loss_type": trainer.loss_type, "scale_rewards": trainer.scale_rewards, "beta": trainer.beta,
                        "kl": "k3 * ratio in the loss" if cfg.use_bias_correction_kl else "k3 in the loss",
                        "epsilon": cfg.epsilon, "num_iterations": cfg.num_iterations,
                        **{k: getattr(cfg, k) for k in no_checkpointing}, "bf16": cfg.bf16,
                        "model_checkpointing": _checkpointing(trainer.model),
                        "steps_per_generation": cfg.steps_per_generation}}
    del trainer, policy
    shutil.rmtree(scratch, ignore_errors=True)
    return out


def _checkpointing(model) -> bool:
    """Whether the model really runs with activation checkpointing (not only what the config says)."""
    return any(getattr(m, "gradient_checkpointing", False) is True for m in model.modules())


# --------------------------------------------------------------------------- report
def mean_ci(values: list[float], level: float = 0.95) -> tuple[float, float]:
    """Mean and the half-width of a t interval over the values (here: per-step mean rewards, which
    drift as the policy learns, so this is a rough interval, not an exact one)."""
    from scipy.stats import t

    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, math.nan
    return mean, t.ppf((1 + level) / 2, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))


def report(args, results: dict, rewards: dict) -> None:
    print("\n== settings each trainer ran with ==")
    for name, res in results.items():
        print(f"{name:>4}: " + ", ".join(f"{k}={v}" for k, v in res["settings"].items()))
    if len(results) == 2:
        same = results["ours"]["prompt_ids"] == results["trl"]["prompt_ids"]
        print(f"prompt token ids identical on both sides: {'yes' if same else 'NO'}")
        steps_prompts = [[c[0] for c in rewards[name].calls] for name in results]
        print(f"same prompts at every step: {'yes' if steps_prompts[0] == steps_prompts[1] else 'NO'}")

    print("\n== seconds per step (step 1 is warm-up and left out of the mean) ==")
    speed = {}
    for name, res in results.items():
        secs = res["seconds"]
        speed[name] = statistics.fmean(secs[1:])
        print(f"{name:>4}: {speed[name]:.2f} s/step   all steps: " + " ".join(f"{s:.2f}" for s in secs))
    if len(speed) == 2:
        print(f"speed ratio ours/TRL = (TRL s/step) / (our s/step) = {speed['trl'] / speed['ours']:.2f}x")

    print("\n== mean reward per step (P x G completions each) ==")
    print("NOTE: same weights, prompts and seed, but the samplers draw different random numbers, so the")
    print("      curves can agree only within sampling noise. Step 1 is the untrained policy on both sides.")
    curves = {name: [statistics.fmean(r) for _, r in rewards[name].calls] for name in results}
    names = list(curves)
    print("step  " + "  ".join(f"{n:>8}" for n in names))
    for i in range(max(len(c) for c in curves.values())):
        print(f"{i + 1:>4}  " + "  ".join(f"{curves[n][i]:>8.4f}" if i < len(curves[n]) else " " * 8 for n in names))
    stats = {n: mean_ci(c) for n, c in curves.items()}
    for n, (m, h) in stats.items():
        print(f"{n:>4}: mean over steps {m:.4f} +- {h:.4f} (95% t interval over the {len(curves[n])} step means)")
    if len(stats) == 2:
        d = stats["ours"][0] - stats["trl"][0]
        half = math.hypot(stats["ours"][1], stats["trl"][1])
        print(f"difference ours - TRL: {d:+.4f} +- {half:.4f} (rough: from the two intervals)")


def main(argv=None) -> None:
    args = parse_args(argv)
    import torch

    from rlhfkit.models import resolve_dtype_name, resolve_model_dir

    folder = resolve_model_dir(args.model)
    dtype = resolve_dtype_name(args.dtype)
    problems, in_step_order = arithmetic_problems(args, args.steps)
    print(f"model={folder} dtype={dtype} threads={torch.get_num_threads()} steps={args.steps} "
          f"prompts/step={args.prompts_per_step} G={args.group_size} max_new_tokens={args.max_new_tokens} "
          f"lr={args.lr} beta={args.beta} temperature={args.temperature} reward={args.reward} seed={args.seed}")
    results, rewards = {}, {}
    for name in args.variants:
        rewards[name] = RecordedRule(args.reward, args.length_target)
        t0 = time.perf_counter()
        if name == "ours":
            results[name] = run_ours(folder, problems, args, dtype, rewards[name])
        else:
            results[name] = run_trl(folder, in_step_order, args, dtype, rewards[name], probe=problems[0])
        print(f"[{name}] done in {time.perf_counter() - t0:.1f} s (including model load and set-up)", flush=True)
        gc.collect()
    report(args, results, rewards)


if __name__ == "__main__":
    main()
