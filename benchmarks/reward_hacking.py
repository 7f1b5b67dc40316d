"""Reward hacking made visible (issue 11, section 4): best-of-N against a proxy reward model
trained on labels from a length-biased simulated pool, judged by a gold scorer.

The design, stated openly because it decides the outcome's shape:
- Gold: a rule the user names, by default ``rlhfkit.rewards.rules:length_target`` with a target
  (default 40 words) ABOVE the starting policy's typical answer (SmolLM2-135M-Instruct answers
  these prompts with about 30 words at temperature 1.0). Gold reward is triangular in length: so
  "longer" is right at first, and wrong once an answer passes the target.
- Labels: K answers per training prompt (``builtin:loop-train``) from the starting policy,
  ranked by a simulated pool (``rlhfkit.feedback.simulate``) whose annotators score with the
  gold at human-level noise (temperature solved, with no bias, for --agreement expected
  agreement with the gold, ``feedback.calibration.calibrate_scale``) PLUS a strong prefers-longer
  bias (--length-bias logits per 100 characters). Most sampled answers sit below the target,
  where gold and bias agree, so the proxy learns "longer is better" and has no data on where it
  stops being true.
- Proxy: a Bradley-Terry reward model on those rankings (``trainers.reward_model``, small
  settings as in the quickstart's ``reward:`` block); its agreement with the gold on held-out
  pairs is reported, with the reward-model length diagnostics.
- Optimiser: best-of-N under the proxy (Gao et al. 2022). M = --samples answers per held-out
  prompt (``builtin:loop-eval``) from the starting policy, all scored by proxy and gold; for
  N = 1, 2, 4, ..., M the EXPECTED proxy and gold reward of best-of-N come from the
  order-statistics estimator (``rlhfkit.eval.bon_sweep``: exact mean over all N-subsets), with
  95% CIs from bootstrapping prompts; KL(N) = log N - (N-1)/N (an upper bound).
- Fit: Gao's best-of-N form R(d) = d (alpha - beta d), d = sqrt(KL), to gold and proxy gains
  over N = 1 (``eval.overoptimization``), with alpha, beta, R^2 and where the fitted gold peaks.
- The turn comes from the data: the gold's best N and the paired bootstrap CI of its fall to
  N = M (``bon_sweep.gold_turn``); "interior" only when that CI lies above zero.

Writes OUT/ as a run folder: ``eval/overoptimization.json`` (form "bon"), ``eval/annotators.json``,
``eval/rm_diagnostics.json``, ``run.json``, ``results.json``, the proxy under OUT/proxy/, and
``report.html`` (``rlhfkit report OUT`` renders the same). Prints a markdown table for
benchmarks/RESULTS.md.

    # the experiment (SmolLM2-135M-Instruct; 48 train prompts x 4 answers for labels, 32 held-out
    # prompts x 32 samples of <= 64 tokens; 48 min on 2 cores shared with another benchmark; result
    # in benchmarks/RESULTS.md)
    flock /tmp/rlhfkit-heavy.lock env OMP_NUM_THREADS=2 HF_HUB_OFFLINE=1 \\
        python benchmarks/reward_hacking.py --out runs/bench-reward-hacking
    # the same pipeline on a tiny random model in seconds (a smoke check; its numbers mean nothing)
    python benchmarks/reward_hacking.py --tiny --out /tmp/bench-reward-hacking-tiny
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

POOL = ({"name": "sim-verbose-careful", "temperature": 1.0, "flip_rate": 0.05},
        {"name": "sim-verbose-hasty", "temperature": 2.0, "flip_rate": 0.15},
        {"name": "sim-verbose", "temperature": 1.0, "flip_rate": 0.05})


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m", help="the starting policy (and the proxy's backbone)")
    ap.add_argument("--gold", default="rlhfkit.rewards.rules:length_target",
                    help="gold scorer: 'module:function' rule or a reward-model folder")
    ap.add_argument("--gold-kwargs", type=json.loads, default={"target": 40, "unit": "words"},
                    help="JSON keyword arguments of a rule gold")
    ap.add_argument("--train-prompts", default="builtin:loop-train")
    ap.add_argument("--eval-prompts", default="builtin:loop-eval")
    ap.add_argument("--n-train", type=int, default=48, help="training prompts labelled (0 = all)")
    ap.add_argument("--n-eval", type=int, default=32, help="held-out prompts (0 = all)")
    ap.add_argument("--label-answers", type=int, default=4, help="K answers ranked per training prompt")
    ap.add_argument("--samples", type=int, default=32, help="M samples per held-out prompt; N runs 1, 2, 4, ..., M")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--length-bias", type=float, default=2.0, help="annotators' prefers-longer bias, logits per "
                    "100 characters of length difference")
    ap.add_argument("--agreement", type=float, default=0.68, help="expected agreement with gold of the pool "
                    "WITHOUT its bias (sets the annotators' temperature)")
    ap.add_argument("--rm-max-length", type=int, default=96, help="proxy tokens per prompt+answer (the prompt is "
                    "cut from the left to a quarter, so 64-token answers are read whole)")
    ap.add_argument("--rm-freeze-layers", type=int, default=24)
    ap.add_argument("--rm-lr", type=float, default=1e-4)
    ap.add_argument("--rm-epochs", type=float, default=1.0)
    ap.add_argument("--rm-batch-size", type=int, default=8)
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--boot", type=int, default=2000, help="bootstrap resamples")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/bench-reward-hacking")
    ap.add_argument("--progress", action="store_true", help="show progress bars")
    ap.add_argument("--tiny", action="store_true", help="a tiny random model and a few prompts: checks the "
                    "pipeline end to end in seconds; its numbers mean nothing")
    return ap


def parse_args(argv=None) -> argparse.Namespace:
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.samples < 2 or args.label_answers < 2:
        ap.error("--samples and --label-answers must be at least 2")
    return apply_tiny(args) if args.tiny else args


def apply_tiny(args: argparse.Namespace) -> argparse.Namespace:
    """--tiny settings (the model is written in main(); random bytes hold a whitespace every ~40 bytes)."""
    args.gold_kwargs, args.n_train, args.n_eval, args.label_answers, args.samples = {"target": 2}, 4, 4, 3, 8
    args.max_new_tokens, args.rm_freeze_layers, args.rm_max_length, args.rm_lr = 24, 0, 64, 1e-3
    args.boot, args.dtype = 200, "fp32"
    return args


def powers_of_two(m: int) -> list[int]:
    """1, 2, 4, ... up to m, and m itself."""
    ns = [2**k for k in range(int(math.log2(m)) + 1)]
    return ns + ([m] if ns[-1] != m else [])


# ------------------------------------------------------------------------------ phases
def load_prompts(spec: str, limit: int):
    from rlhfkit.rollout.prompts import read_prompts
    from rlhfkit.trainers.rounds import resolve_prompts

    records = read_prompts(resolve_prompts(spec))
    return records[:limit] if limit else records


def label_rankings(policy, tokenizer, records, gold_scorer, args):
    """K answers per training prompt, ranked by the length-biased pool; (labelled items, pool facts)."""
    from rlhfkit.feedback.calibration import agreement_with_gold, calibrate_scale, pool_from_specs
    from rlhfkit.rollout.generate import SamplingConfig, generate_items

    sampling = SamplingConfig(n=args.label_answers, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                              top_p=1.0, seed=args.seed, batch_size=max(1, 128 // args.label_answers))
    items = generate_items(policy, tokenizer, records, sampling, model_name=args.model)
    scale = calibrate_scale(gold_scorer, items, POOL, args.agreement, gold_name=args.gold)
    biased = [{**spec, "length_bias": args.length_bias} for spec in POOL]
    labelled = pool_from_specs(gold_scorer, biased, scale, args.seed, args.gold).label_items(items, mode="ranking")
    # the labelling pool's agreement with gold, measured by a twin pool (its own seed) on every pair
    measured = agreement_with_gold(pool_from_specs(gold_scorer, biased, scale, args.seed + 1, args.gold), items)
    facts = {"temperature_scale": scale, "length_bias_per_100_chars": args.length_bias,
             "unbiased_expected_gold_agreement": args.agreement, "gold_agreement": measured.agreement,
             "gold_agreement_pairs": measured.n_pairs,
             "configs": pool_from_specs(gold_scorer, biased, scale, 0, args.gold).configs()}
    return labelled, facts


def train_proxy(labelled, args, out: Path) -> Path:
    from rlhfkit.data.reward_labels import reward_examples
    from rlhfkit.trainers.config import RewardTrainConfig
    from rlhfkit.trainers.reward_model import train_reward_model

    cfg = RewardTrainConfig(model=args.model, out=str(out), seed=args.seed, progress=args.progress, loss="bt",
                            max_length=args.rm_max_length, freeze_layers=args.rm_freeze_layers,
                            batch_size=args.rm_batch_size, lr=args.rm_lr, epochs=args.rm_epochs,
                            lr_schedule="constant", dtype=args.dtype, resume=False)
    folder, _ = train_reward_model(cfg, train_pairs=reward_examples(labelled, "bt", source="the simulated labels"))
    return folder


def held_out_batches(policy, tokenizer, records, samples: int, max_new_tokens: int, temperature: float, seed: int):
    """(prompt ids, [RolloutBatch]): ``samples`` answers per prompt, about 128 sequences per
    sampler call (wide batches decode cheaper), each call seeded by its first prompt's position."""
    from rlhfkit.rollout.prompts import render_prompt
    from rlhfkit.rollout.sampler import SamplingParams, TorchSampler

    sampler = TorchSampler(policy, tokenizer)
    params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, top_p=1.0)
    ids = [tokenizer(render_prompt(tokenizer, r.prompt), add_special_tokens=False)["input_ids"] for r in records]
    chunk = max(1, 128 // samples)
    return ids, [sampler.sample(ids[start:start + chunk], samples, params, seed=seed * 7919 + 1 + start)
                 for start in range(0, len(ids), chunk)]


def sample_held_out(policy, tokenizer, records, args) -> list[list[str]]:
    """M answers per held-out prompt (``held_out_batches``), grouped by prompt."""
    _, batches = held_out_batches(policy, tokenizer, records, args.samples, args.max_new_tokens, args.temperature,
                                  args.seed)
    texts = [t.strip() for batch in batches for t in batch.texts]
    return [texts[i:i + args.samples] for i in range(0, len(texts), args.samples)]


def score_matrix(reward_fn, records, answers: list[list[str]]):
    """(P, M) scores; an empty answer gets the lowest score seen minus 1 (best-of-N never picks it
    unless all of a prompt's answers are empty) and is counted."""
    import numpy as np

    prompts = [r.prompt for r, group in zip(records, answers) for _ in group]
    flat = np.array(reward_fn(prompts, [a for group in answers for a in group]), dtype=float)
    empty = np.array([not a for group in answers for a in group])
    if empty.any() and (~empty).any():
        flat[empty] = flat[~empty].min() - 1.0
    return flat.reshape(len(answers), -1), int(empty.sum())


def held_out_agreement(proxy, gold, answers, args) -> tuple[dict, dict]:
    """Proxy vs gold on disjoint held-out pairs (samples 0-1, 2-3, ... of each prompt; gold ties
    skipped): agreement with a prompt-clustered bootstrap CI, and the reward-model diagnostics."""
    import numpy as np

    from rlhfkit.eval.reward_eval import summarize
    from rlhfkit.eval.rm_diagnostics import rm_diagnostics
    from rlhfkit.eval.winrate import bootstrap_ci

    chosen, rejected, lc, lr, cluster = [], [], [], [], []
    for p in range(proxy.shape[0]):
        for j in range(0, proxy.shape[1] - 1, 2):
            if gold[p, j] == gold[p, j + 1]:
                continue
            c, r = (j, j + 1) if gold[p, j] > gold[p, j + 1] else (j + 1, j)
            chosen.append(proxy[p, c]), rejected.append(proxy[p, r]), cluster.append(p)
            lc.append(len(answers[p][c])), lr.append(len(answers[p][r]))
    if not chosen:
        raise SystemExit("every held-out pair is a gold tie: the gold cannot judge these answers")
    correct = (np.array(chosen) > np.array(rejected)).astype(float)
    lo, hi = bootstrap_ci(correct, args.boot, args.seed, clusters=cluster)
    agreement = {"agreement": float(correct.mean()), "ci95": [lo, hi], "pairs": len(correct),
                 "prompts": len(set(cluster)), "longer_answer_agreement": float(np.mean(np.array(lc) > np.array(lr)))}
    margins = (np.array(chosen) - np.array(rejected)).tolist()
    diagnostics = {**summarize(margins, lc, lr, n_boot=args.boot, seed=args.seed), **rm_diagnostics(chosen, rejected, lc, lr)}
    return agreement, diagnostics


# ------------------------------------------------------------------------------ analysis
def gao_fits(points: list[dict]) -> dict:
    """Gao's best-of-N form fitted to the gains over N = 1 of proxy and gold; the fitted gold peak."""
    from rlhfkit.eval.overoptimization import best_of_n_for_kl, fit_best_of_n

    kl = [p["kl"] for p in points]
    fits = {}
    for name in ("proxy", "gold"):
        fit = fit_best_of_n(kl, [p[name] for p in points])
        fits[name] = {"alpha": fit.alpha, "beta": fit.beta, "r2": fit.r2}
        if fit.peak is not None:
            d_star, r_star = fit.peak
            try:
                n_star = best_of_n_for_kl(d_star**2)
            except ValueError:  # beyond any practical N
                n_star = None
            fits[name]["peak"] = {"sqrt_kl": d_star, "kl": d_star**2, "reward": r_star, "n": n_star}
    return fits


def ci(pair: list[float]) -> str:
    return f"[{pair[0]:+.3f}, {pair[1]:+.3f}]"


def markdown_table(points: list[dict]) -> str:
    rows = ["| N | KL (nats) | √KL | proxy − N=1 (95% CI) | gold − N=1 (95% CI) | gold |",
            "| ---: | ---: | ---: | --- | --- | ---: |"]
    for p in points:
        rows.append(f"| {p['n']} | {p['kl']:.3f} | {math.sqrt(p['kl']):.3f} | {p['proxy']:+.3f} {ci(p['proxy_ci95'])} "
                    f"| {p['gold']:+.3f} {ci(p['gold_ci95'])} | {p['gold_abs']:.3f} |")
    return "\n".join(rows)


def turn_sentence(turn: dict, fits: dict) -> str:
    lo, hi = turn["drop_ci95"]
    if turn["interior"]:
        head = (f"TURN: gold peaks at N={turn['n_peak']} ({turn['gold_peak']:.3f}) and falls to "
                f"{turn['gold_at_n_max']:.3f} at N={turn['n_max']}: a drop of {turn['drop']:.3f}, 95% CI [{lo:.3f}, {hi:.3f}]")
    elif turn["significant_drop"]:
        head = (f"NO PEAK: gold is highest at the smallest N={turn['n_peak']} and falls by {turn['drop']:.3f} "
                f"(95% CI [{lo:.3f}, {hi:.3f}]) to N={turn['n_max']}: the proxy misleads from the start")
    elif turn["n_peak"] == turn["n_max"]:
        head = f"NO TURN: gold is highest at the largest N={turn['n_max']} ({turn['gold_at_n_max']:.3f})"
    else:
        head = (f"NO CLEAR TURN: gold is highest at N={turn['n_peak']} but its drop to N={turn['n_max']} "
                f"({turn['drop']:.3f}, 95% CI [{lo:.3f}, {hi:.3f}]) is within the noise")
    peak = fits["gold"].get("peak")
    if peak is None:
        return head + "; the fitted gold curve never turns (beta <= 0)"
    where = f"N ≈ {peak['n']:.1f}" if peak["n"] is not None else "beyond any practical N"
    return head + f"; the fitted gold curve peaks at √KL = {peak['sqrt_kl']:.3f} ({where})"


def annotators(labelled, pool_facts: dict) -> dict:
    """eval/annotators.json: the pool's settings and each simulated annotator's length and position biases."""
    from rlhfkit.feedback.bias import label_biases

    rows = [{"annotator": b.annotator, "source": b.source, "judgements": b.n_pairs,
             "longer_preferred_rate": b.longer_chosen, "first_position_best_rate": b.first_shown_chosen,
             "config": pool_facts["configs"].get(b.annotator)} for b in label_biases(labelled).values()]
    return {"pool": {k: v for k, v in pool_facts.items() if k != "configs"}, "annotators": rows}


def write_run(out: Path, args, points, fits, turn, pool_facts, labelled, agreement, diagnostics, extra) -> None:
    from rlhfkit import __version__
    from rlhfkit.data.atomic import atomic_write

    def dump(rel: str, obj) -> None:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(out / rel) as fh:
            fh.write(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")

    dump("eval/overoptimization.json", {"form": "bon", "points": points, "fit": fits, "turn": turn,
                                        "proxy_gold_agreement": agreement})
    dump("eval/annotators.json", annotators(labelled, pool_facts))
    dump("eval/rm_diagnostics.json", diagnostics)
    settings = {k: v for k, v in vars(args).items() if k != "progress"}
    dump("run.json", {"kind": "best-of-N sweep", "config": settings,
                      "provenance": {"rlhfkit_version": __version__, "model": args.model, "gold": args.gold,
                                     "command": " ".join(sys.argv)}})
    dump("results.json", {"settings": settings, "points": points, "fit": fits, "turn": turn, "pool": pool_facts,
                          "proxy_gold_agreement": agreement, **extra})


# ------------------------------------------------------------------------------ main
def main(argv=None) -> dict:
    import numpy as np

    from rlhfkit.eval.bon_sweep import bon_sweep, gold_turn
    from rlhfkit.eval.report import build_report
    from rlhfkit.models import load_causal_lm
    from rlhfkit.rewards.base import load_reward
    from rlhfkit.rewards.model_reward import ModelReward

    args, seconds = parse_args(argv), {}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.tiny:
        from rlhfkit.models import save_tiny

        args.model = str(save_tiny(out / "tiny-model", layers=2, hidden=32))
    t = time.perf_counter()
    gold_fn = load_reward([{"source": args.gold, "kwargs": args.gold_kwargs}] if args.gold_kwargs else args.gold)
    policy, tokenizer = load_causal_lm(args.model, dtype=args.dtype)
    train, held_out = load_prompts(args.train_prompts, args.n_train), load_prompts(args.eval_prompts, args.n_eval)

    labelled, pool_facts = label_rankings(policy, tokenizer, train, lambda p, x: float(gold_fn([p], [x])[0]), args)
    seconds["labels"] = time.perf_counter() - t
    proxy_dir = train_proxy(labelled, args, out / "proxy")
    seconds["proxy"] = time.perf_counter() - t - sum(seconds.values())
    answers = sample_held_out(policy, tokenizer, held_out, args)
    seconds["samples"] = time.perf_counter() - t - sum(seconds.values())
    proxy, empty = score_matrix(ModelReward.load(proxy_dir, max_length=args.rm_max_length), held_out, answers)
    gold, _ = score_matrix(gold_fn, held_out, answers)
    seconds["scoring"] = time.perf_counter() - t - sum(seconds.values())

    ns = powers_of_two(args.samples)
    points = bon_sweep(proxy, gold, ns, n_boot=args.boot, seed=args.seed)
    fits, turn = gao_fits(points), gold_turn(proxy, gold, ns, n_boot=args.boot, seed=args.seed)
    agreement, diagnostics = held_out_agreement(proxy, gold, answers, args)
    words = np.array([[len(a.split()) for a in group] for group in answers], dtype=float)
    best = np.argmax(proxy, axis=1)  # what best-of-M picks (first of equal maxima)
    extra = {"seconds": seconds, "empty_answers": empty, "mean_words": float(words.mean()),
             "words_quartiles": [float(q) for q in np.quantile(words, [0.25, 0.5, 0.75])],
             "mean_words_best_of_m": float(words[np.arange(len(best)), best].mean()),
             "examples": [{"prompt": str(held_out[i].prompt), "best_of_m": answers[i][best[i]],
                           "a_sample": answers[i][0]} for i in range(min(3, len(answers)))],
             # every held-out answer with both scores: the sweep can be recomputed from results.json
             "held_out": [{"prompt": r.prompt, "answers": a, "proxy": p.tolist(), "gold": g.tolist()}
                          for r, a, p, g in zip(held_out, answers, proxy, gold)]}
    write_run(out, args, points, fits, turn, pool_facts, labelled, agreement, diagnostics, extra)
    report = build_report(out)

    print(f"{len(train)} train prompts x {args.label_answers} answers labelled by the pool (gold agreement "
          f"{pool_facts['gold_agreement']:.3f} on {pool_facts['gold_agreement_pairs']} pairs, length bias "
          f"{args.length_bias}/100 chars); {len(held_out)} held-out prompts x {args.samples} samples "
          f"({empty} empty); answers {extra['mean_words']:.1f} words on average (quartiles "
          f"{', '.join(f'{q:.0f}' for q in extra['words_quartiles'])}), best-of-{args.samples} under the proxy "
          f"{extra['mean_words_best_of_m']:.1f}; gold {args.gold} {json.dumps(args.gold_kwargs)}")
    lo, hi = agreement["ci95"]
    print(f"proxy vs gold on {agreement['pairs']} held-out pairs: {agreement['agreement']:.3f} [{lo:.3f}, {hi:.3f}] "
          f"(the longer answer of each pair: {agreement['longer_answer_agreement']:.3f})")
    print(markdown_table(points))
    for name in ("proxy", "gold"):
        f = fits[name]
        print(f"Gao best-of-N fit, {name}: alpha {f['alpha']:.4f}, beta {f['beta']:.4f}, R^2 {f['r2']:.3f}")
    print(turn_sentence(turn, fits))
    print("seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()) + f"; report: {report}")
    return {"points": points, "fit": fits, "turn": turn, "agreement": agreement, "pool": pool_facts,
            "report": str(report), **extra}


if __name__ == "__main__":
    main()
