"""Run folders written in the format of docs/run-format.md, for the report tests.

The online-RL run is a made-up but realistic reward-hacking run: the proxy reward keeps rising,
the gold reward peaks at step 60 and falls, completions get longer, and one completion holds an
HTML payload (model text is untrusted)."""

from __future__ import annotations

import json
import math
from pathlib import Path

HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned=2"> & done'

# Gao et al.'s RL form with known coefficients: proxy never turns in range, gold peaks at
# d* = exp(alpha / beta - 1) = exp(0.2) -> KL* = exp(0.4) = 1.492 nats
PROXY_FIT = {"alpha": 1.0, "beta": 0.05}
GOLD_FIT = {"alpha": 0.6, "beta": 0.5}


def _rl(d: float, alpha: float, beta: float) -> float:
    return 0.0 if d == 0 else d * (alpha - beta * math.log(d))


def write_jsonl(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2))


def online_rl_run(folder: Path, steps: int = 120, seed_shift: float = 0.0, hostile: bool = True,
                  evals: bool = True) -> Path:
    metrics = []
    for s in range(1, steps + 1):
        kl = 0.03 * s
        d = math.sqrt(kl)
        wobble = 0.04 * math.sin(1.7 * s + seed_shift)
        metrics.append({
            "step": s, "reward/mean": _rl(d, **PROXY_FIT) + wobble, "reward/std": 0.3 + 0.001 * s,
            "kl/mean": kl, "entropy": 1.9 * math.exp(-s / 150), "response_length/mean": 40 + 0.6 * s + 3 * wobble,
            "clip_fraction": 0.05 + 0.1 * (1 - math.exp(-s / 40)), "loss": 0.8 * math.exp(-s / 60) + wobble / 4,
            "lr": 1e-6 * min(1.0, s / 10), "proxy_reward/mean": _rl(d, **PROXY_FIT) + wobble,
            "gold_reward/mean": _rl(d, **GOLD_FIT) - wobble / 2,
        })
    write_jsonl(folder / "metrics.jsonl", metrics)
    prompts = ["Is the Great Wall of China visible from space? I'm sure it is.", "Write a haiku about rain.",
               "Give me one tip for sleeping better."]
    for s in range(0, steps + 1, 30):
        recs = []
        for i, p in enumerate(prompts):
            text = ("Yes, you are absolutely right! " * (1 + s // 30)) + f"(answer {i} at step {s})"
            if hostile and s == 60 and i == 0:
                text = HOSTILE
            recs.append({"prompt": p, "completion": text, "reward": round(_rl(math.sqrt(0.03 * max(s, 1)), **PROXY_FIT), 3),
                         "gold_reward": round(_rl(math.sqrt(0.03 * max(s, 1)), **GOLD_FIT), 3)})
        write_jsonl(folder / "samples" / f"step-{s:06d}.jsonl", recs)
        (folder / "checkpoints" / f"step-{s}").mkdir(parents=True, exist_ok=True)
    if not evals:
        return folder
    points = [{"checkpoint": f"step-{s}", "kl": 0.03 * s,
               "proxy": _rl(math.sqrt(0.03 * s), **PROXY_FIT), "gold": _rl(math.sqrt(0.03 * s), **GOLD_FIT)}
              for s in (0, 20, 40, 60, 80, 100, 120) if s <= steps]
    write_json(folder / "eval" / "overoptimization.json",
               {"form": "rl", "points": points, "fit": {"proxy": PROXY_FIT, "gold": GOLD_FIT}})
    write_json(folder / "eval" / "winrate.json", {"win_rate": 0.62, "ci95": [0.55, 0.69], "lc_win_rate": 0.51,
                                                  "lc_ci95": [0.44, 0.58], "n": 200, "judge": "rm:gold-hh"})
    write_json(folder / "eval" / "sycophancy.json", {"before": {"rate": 0.22, "ci95": [0.15, 0.30], "n": 120},
                                                     "after": {"rate": 0.41, "ci95": [0.32, 0.50], "n": 120}})
    write_json(folder / "eval" / "annotators.json", {
        "agreement": {"units": 300, "fleiss_kappa": 0.31, "krippendorff_alpha_ordinal": None,
                      "cohen_kappa": [{"a": "sim-0", "b": "sim-1", "units": 100, "kappa": 0.34}]},
        "pool": {"gold_agreement": 0.69, "human_labels_agreement": 0.61},
        "annotators": [
            {"annotator": "sim-0", "source": "simulated", "judgements": 150, "gold_accuracy": 0.71,
             "first_position_best_rate": 0.52, "first_position_chance": 0.5, "longer_preferred_rate": 0.74,
             "reliability_weight": 0.42, "config": {"temperature": 1.0, "flip_rate": 0.1, "prefers_longer": 0.5}},
            {"annotator": "sim-1", "source": "simulated", "judgements": 150, "gold_accuracy": 0.66,
             "first_position_best_rate": 0.68, "first_position_chance": 0.5, "longer_preferred_rate": 0.49,
             "reliability_weight": 0.32, "config": {"temperature": 1.5, "flip_rate": 0.15, "prefers_first": 0.3}},
        ]})
    write_json(folder / "eval" / "rm_diagnostics.json", {
        "n_pairs": 299, "accuracy": 0.605, "accuracy_ci95": [0.552, 0.659], "ece": 0.041, "ties": 0,
        "length_bias": {"chosen_longer": {"n": 133, "accuracy": 0.519}, "chosen_not_longer": {"n": 166, "accuracy": 0.675}},
        "longer_answer_baseline": 0.445, "score_length_correlation": -0.12, "longer_rejected": {"n": 160, "accuracy": 0.68}})
    write_json(folder / "run.json", {"kind": "ppo", "config": {"kl_coef": 0.05, "lr": 1e-6, "batch_size": 8,
                                                               "model": "smollm2-135m"},
                                     "provenance": {"rlhfkit_version": "0.1.0", "git_commit": "a33628d",
                                                    "command": "rlhfkit ppo --recipe recipes/ppo.yaml"}})
    return folder


def loop_run(folder: Path, rounds: int = 2) -> Path:
    """round-K/policy (an online-RL run with samples and a win rate) and round-K/reward (a reward
    model's files)."""
    for k in range(1, rounds + 1):
        online_rl_run(folder / f"round-{k}" / "policy", steps=40 * k, seed_shift=k, hostile=False, evals=False)
        write_json(folder / f"round-{k}" / "policy" / "eval" / "winrate.json",
                   {"win_rate": 0.5 + 0.07 * k, "ci95": [0.43 + 0.07 * k, 0.57 + 0.07 * k], "n": 150, "judge": "gold"})
        write_jsonl(folder / f"round-{k}" / "reward" / "train_log.jsonl",
                    [{"step": s, "loss": 0.69 - 0.01 * s, "accuracy": 0.5 + 0.01 * s, "lr": 1e-5} for s in range(1, 11)])
        write_json(folder / f"round-{k}" / "reward" / "rlhfkit_reward.json",
                   {"backbone": "tiny", "n_heads": 1, "train_config": {"lr": 1e-5}, "steps": 10,
                    "eval": {"n_pairs": 50, "accuracy": 0.6 + 0.02 * k, "accuracy_ci95": [0.5, 0.7], "ece": 0.05}})
    return folder
