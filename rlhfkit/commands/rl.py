"""`rlhfkit rl`: online RL (GRPO, RLOO, PPO, RAFT) against a reward model or a rule."""

from __future__ import annotations

from pathlib import Path

import typer

from rlhfkit.commands.options import config_command
from rlhfkit.trainers.config import ALGOS, RLConfig

HELP = """Optimise a policy online: sample, score with a reward, update, keep a KL anchor to the start.

Example: rlhfkit rl --algo grpo --policy smollm2-135m --reward rlhfkit.rewards.rules:numeric_exact_match --prompts problems.jsonl --out runs/grpo

--reward is a reward-model folder (from `rlhfkit reward train`) or module:function; a recipe may give
a weighted list. Writes a HF folder, metrics.jsonl (reward, KL, entropy, lengths, clip fraction per
step), samples/ and checkpoint/ (re-running the same command resumes when --save-every was set).
Precedence: defaults < --recipe YAML < flags.
"""


def run_rl(cfg: RLConfig) -> Path:
    from rlhfkit.commands.common import console, user_errors
    from rlhfkit.trainers.registry import build_online

    with user_errors():
        trainer = build_online(cfg, out=Path(cfg.out))
    history = trainer.train()
    folder = trainer.save()
    if history:
        last = history[-1]
        console.print(f"saved {folder} after {trainer.step} steps; reward {last['reward/mean']:.4g}, "
                      f"KL {last['kl/mean']:.4g} nats/sequence", highlight=False)
    return folder


app = typer.Typer()
app.callback(invoke_without_command=True, help=HELP)(config_command(RLConfig, run_rl, ALGOS))


def best_of_n_command(
    policy: str = typer.Option("smollm2-135m", "--policy", help="policy: alias, HF folder or .gguf"),
    reward: str = typer.Option(..., "--reward", help="reward-model folder or module:function"),
    prompts: Path = typer.Option(..., "--prompts", help="prompts file (.txt or JSONL; extra fields reach the reward)"),
    out: Path = typer.Option(..., "--out", help="JSONL: the chosen completion per prompt with its reward"),
    n: int = typer.Option(8, "--n", help="samples per prompt (N)"),
    max_new_tokens: int = typer.Option(64, help="max tokens per sample"),
    temperature: float = typer.Option(1.0, help="sampling temperature"),
    top_p: float = typer.Option(1.0, help="nucleus sampling (1 = off)"),
    batch_prompts: int = typer.Option(8, help="prompts sampled together"),
    seed: int = typer.Option(0, help="seed"),
    dtype: str = typer.Option("auto", help="fp32 | bf16 | auto"),
) -> None:
    """Best-of-N: sample N per prompt, keep the highest-reward one; logs the KL bound log N - (N-1)/N.

    Example: rlhfkit best-of-n --policy smollm2-135m --reward runs/rm --prompts prompts.txt --n 8 --out bon.jsonl
    """
    import json

    from rlhfkit.commands.common import console, progress, user_errors
    from rlhfkit.data.atomic import atomic_write
    from rlhfkit.models import load_causal_lm
    from rlhfkit.rewards.base import load_reward
    from rlhfkit.rollout.best_of_n import best_of_n
    from rlhfkit.rollout.sampler import SamplingParams, TorchSampler
    from rlhfkit.trainers.online import read_prompt_set

    with user_errors():
        model, tokenizer = load_causal_lm(policy, dtype=dtype)
        reward_fn = load_reward(reward)
        prompt_set = read_prompt_set(prompts, tokenizer, 1024)
        params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p)
    sampler, rows = TorchSampler(model, tokenizer), []
    total = len(prompt_set.prompt_ids)
    with progress(total, f"best-of-{n}") as advance:
        for start in range(0, total, batch_prompts):
            span = range(start, min(total, start + batch_prompts))
            keys = sorted({k for i in span for k in prompt_set.metadata[i]})
            meta = {k: [prompt_set.metadata[i].get(k) for i in span] for k in keys}
            result = best_of_n(sampler, [prompt_set.prompts[i] for i in span], [prompt_set.prompt_ids[i] for i in span],
                               reward_fn, n, params, seed + start, meta)
            for i, text, r, table in zip(span, result.completions, result.rewards, result.all_rewards):
                prompt = prompt_set.prompts[i]
                prompt = prompt if isinstance(prompt, str) else [m if isinstance(m, dict) else m.model_dump() for m in prompt]
                rows.append({"prompt": prompt, "completion": text, "reward": r, "rewards": table, "n": n,
                             "kl_bound": result.kl_bound})
            advance(n=len(span))
    with atomic_write(out) as fh:
        fh.writelines(json.dumps(row) + "\n" for row in rows)
    mean_best = sum(r["reward"] for r in rows) / len(rows)
    mean_all = sum(sum(r["rewards"]) / n for r in rows) / len(rows)
    console.print(f"best-of-{n}: mean reward {mean_best:.4g} (a single sample: {mean_all:.4g}); "
                  f"KL bound log N - (N-1)/N = {rows[0]['kl_bound']:.4f} nats; wrote {out}", highlight=False)
