"""Does learning from critiques help? ILF vs the starting policy vs SFT on the original responses
(issue 13, section 3), with simulated critiques whose gold is a rule.

1. Prompts: arithmetic word problems (``rlhfkit.rewards.arithmetic``, its train/test split by
   problem hash), the bare question without the dataset's '####' instruction.
2. The starting policy samples 2 responses per training prompt; a simulated annotator built from
   the gold rule (``rlhfkit.feedback.simulate.rule_annotator``) ranks them and writes a critique
   of every response the rule faults: ``length`` -> "Too long: answer in one sentence." (gold:
   at most --max-words words), ``final-number`` -> "Does not give the final number. / End with
   the final number as 'The answer is N.'" (gold: the answer ends that way).
3. Policies, each trained from the starting policy on the same critiqued responses' prompts:
   - start: no training;
   - sft-original: SFT on (prompt, the critiqued response): what training on the data without
     the critiques gives;
   - ilf-M for each M in --m: ``rlhfkit.trainers.ilf.run_ilf`` with M refinements per critique,
     selected by the gold rule itself (the scorer the user names; here the rule the critiques
     came from), then the same SFT settings.
4. Held-out prompts: --samples responses per prompt from each policy (temperature --eval-temperature),
   gold score per prompt (mean over samples); the mean with a 95% bootstrap CI over prompts, and
   the paired difference to the starting policy with its CI (``rlhfkit.eval.winrate.bootstrap_ci``).

Writes OUT/results.json (rewritten after each policy) and OUT/eval/POLICY.json (per-prompt gold
scores and the answers), and prints a markdown table for benchmarks/RESULTS.md. A re-run with the
same --out reuses what is finished: the critiques, the trained folders (refused when trained with
other settings) and the evaluations. Commands:

    # the experiment (SmolLM2-135M-Instruct, fp32 on CPU; run with --m 1 2 4 in about 1.5 h on 2 shared
    # cores, M = 8 adds ~25 min; result in benchmarks/RESULTS.md)
    flock /tmp/rlhfkit-heavy.lock env OMP_NUM_THREADS=2 HF_HUB_OFFLINE=1 \\
        python benchmarks/ilf.py --rule length --m 1 2 4 --out runs/bench-ilf-length
    python benchmarks/ilf.py --rule final-number --m 1 2 4 8 --out runs/bench-ilf-final
    # the same pipeline end to end on a tiny random model in seconds (a smoke check, no claim)
    python benchmarks/ilf.py --tiny --out /tmp/bench-ilf-tiny
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from pathlib import Path

import numpy as np


def make_prompts(split: str, n: int, seed: int) -> list[str]:
    from rlhfkit.rewards.arithmetic import generate_problems

    return [p["prompt"].split("\n")[0] for p in generate_problems(split, n, seed)]


def gold_rule(name: str, max_words: int):
    """(simulated-annotator rule, the same gold as a reward function)."""
    from rlhfkit.feedback.simulate import final_number_rule, length_rule
    from rlhfkit.rewards.critique_rules import at_most_words, final_answer

    if name == "length":
        return length_rule(max_words), functools.partial(at_most_words, max_words=max_words)
    if name == "final-number":
        return final_number_rule(), final_answer
    raise SystemExit(f"--rule must be length or final-number, got {name!r}")


def sample(model, tokenizer, prompts: list, n: int, max_new_tokens: int, temperature: float, seed: int,
           batch: int = 16) -> list[list[str]]:
    """n completions per prompt, in prompt order."""
    from rlhfkit.rollout.sampler import SamplingParams, TorchSampler
    from rlhfkit.trainers.online import prompt_set

    sampler = TorchSampler(model, tokenizer)
    params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature)
    out = []
    for b in range(0, len(prompts), batch):
        chunk = prompts[b:b + batch]
        ids = prompt_set(chunk, tokenizer, 512).prompt_ids
        texts = sampler.sample(ids, n, params, seed=seed + b).texts
        out += [texts[i * n:(i + 1) * n] for i in range(len(chunk))]
    return out


def simulate_critiques(prompts: list[str], responses: list[list[str]], rule, seed: int) -> list[dict]:
    """ILF triples from a simulated annotator that ranks each item and critiques by the rule."""
    from rlhfkit.data.language_feedback import ilf_triples
    from rlhfkit.feedback.simulate import AnnotatorPool, rule_annotator
    from rlhfkit.schema import PreferenceItem, Response

    items = [PreferenceItem(id=f"train-{i}", prompt=p, responses=[Response(text=t if t.strip() else "(empty)")
                                                                   for t in rs])
             for i, (p, rs) in enumerate(zip(prompts, responses))]
    pool = AnnotatorPool([rule_annotator("sim", rule, temperature=0.1)], seed=seed)
    return ilf_triples(pool.label_items(items))


def sft_config(args, out: Path):
    from rlhfkit.trainers.config import SFTConfig

    return SFTConfig(model=args.model, out=str(out), lr=args.lr, lr_schedule="constant", batch_size=args.batch_size,
                     epochs=args.epochs, max_steps=args.max_steps, max_length=args.max_length, progress=args.progress,
                     seed=args.seed)


TRAINING_FIELDS = ("model", "lr", "lr_schedule", "batch_size", "epochs", "max_steps", "max_length", "seed")


def finished_folder(args, out: Path) -> bool:
    """True when ``out`` holds a model this run trained with the same settings (a re-run reuses it
    instead of training again); a folder trained with other settings is refused by name."""
    saved = out / "rlhfkit_sft_config.json"
    if not (out / "model.safetensors").exists() or not saved.exists():
        return False
    cfg, wanted = json.loads(saved.read_text()), sft_config(args, out).__dict__
    changed = [k for k in TRAINING_FIELDS if cfg.get(k) != wanted[k]]
    if changed:
        raise SystemExit(f"{out}: trained with other settings ({', '.join(changed)}); use another --out or "
                         "delete the folder")
    return True


def train_sft_original(args, triples: list[dict], out: Path):
    from rlhfkit.models import load_causal_lm
    from rlhfkit.trainers.sft import SFTExample, SFTTrainer

    if finished_folder(args, out):
        return load_causal_lm(str(out), dtype="fp32")
    model, tokenizer = load_causal_lm(args.model, dtype="fp32")
    examples = [SFTExample(t["prompt"], t["response"]) for t in triples]
    trainer = SFTTrainer(model, tokenizer, sft_config(args, out), out_dir=out).setup(examples)
    trainer.train()
    trainer.save()
    return model, tokenizer


def train_ilf(args, triples_path: Path, m: int, scorer, out: Path):
    from rlhfkit.data.language_feedback import read_ilf_triples
    from rlhfkit.models import load_causal_lm
    from rlhfkit.rewards.base import load_reward
    from rlhfkit.trainers.config import ILFConfig
    from rlhfkit.trainers.ilf import run_ilf

    base = sft_config(args, out).__dict__
    cfg = ILFConfig(**{**base, "data": str(triples_path), "scorer": f"gold:{args.rule}", "refinements": m,
                       "max_new_tokens": args.max_new_tokens, "temperature": args.temperature,
                       "refine_batch_size": args.refine_batch_size})
    if finished_folder(args, out) and (out / "lineage.json").exists():
        model, tokenizer = load_causal_lm(str(out), dtype="fp32")
        lineage = json.loads((out / "lineage.json").read_text())
    else:
        model, tokenizer = load_causal_lm(args.model, dtype="fp32")
        model, lineage = run_ilf(model, tokenizer, cfg, load_reward(scorer), read_ilf_triples(triples_path))
    refinements = [json.loads(line) for line in (out / "refinements.jsonl").read_text().splitlines()]
    chosen = [r["scores"][r["selected"]] for r in refinements if r["selected"] is not None]
    first = [r["scores"][0] for r in refinements]
    stats = {"targets": lineage["rounds"][-1]["targets"],
             "selected_gold_mean": float(np.mean(chosen)) if chosen else None,
             "first_sample_gold_mean": float(np.mean(first)) if first else None}
    return model, tokenizer, stats


def evaluate(model, tokenizer, prompts: list[str], gold, args, cache: Path | None = None) -> np.ndarray:
    """Per-prompt gold score (mean over --samples samples), in prompt order; kept in ``cache``
    (with the answers) and read back by a re-run with the same evaluation settings."""
    from rlhfkit.data.atomic import atomic_write

    settings = {"prompts": prompts, "samples": args.samples, "max_new_tokens": args.max_new_tokens,
                "eval_temperature": args.eval_temperature, "seed": args.seed, "rule": args.rule,
                "max_words": args.max_words}
    if cache is not None and cache.exists():
        saved = json.loads(cache.read_text())
        if saved["settings"] == settings:
            return np.array(saved["scores"])
    texts = sample(model, tokenizer, prompts, args.samples, args.max_new_tokens, args.eval_temperature,
                   seed=10_000 + args.seed)
    scores = [float(np.mean(gold([p] * len(ts), ts))) for p, ts in zip(prompts, texts)]
    if cache is not None:
        with atomic_write(cache) as f:
            json.dump({"settings": settings, "scores": scores, "answers": texts}, f, ensure_ascii=False)
    return np.array(scores)


def summarise(name: str, scores: np.ndarray, start: np.ndarray, extra: dict | None = None,
              sft: np.ndarray | None = None) -> dict:
    """One policy's row: its gold mean, and its paired differences (same held-out prompts) to the
    starting policy and, for ILF, to SFT on the original responses, each with a 95% CI."""
    from rlhfkit.eval.winrate import bootstrap_ci

    lo, hi = bootstrap_ci(scores)
    row = {"policy": name, "gold_mean": float(scores.mean()), "ci95": [lo, hi], "n_prompts": int(scores.size)}
    if scores is not start:
        d = scores - start
        dlo, dhi = bootstrap_ci(d)
        row.update({"diff_vs_start": float(d.mean()), "diff_ci95": [dlo, dhi]})
    if sft is not None:
        d = scores - sft
        dlo, dhi = bootstrap_ci(d)
        row.update({"diff_vs_sft": float(d.mean()), "diff_vs_sft_ci95": [dlo, dhi]})
    row.update(extra or {})
    return row


def table(rows: list[dict]) -> str:
    lines = ["| policy | gold (mean) | 95% CI | minus start | 95% CI | minus sft-original | 95% CI | notes |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        diff = f"{r['diff_vs_start']:+.3f}" if "diff_vs_start" in r else ""
        dci = "[{:+.3f}, {:+.3f}]".format(*r["diff_ci95"]) if "diff_ci95" in r else ""
        dsft = f"{r['diff_vs_sft']:+.3f}" if "diff_vs_sft" in r else ""
        dsft_ci = "[{:+.3f}, {:+.3f}]".format(*r["diff_vs_sft_ci95"]) if "diff_vs_sft_ci95" in r else ""
        notes = ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()
                          if k in ("targets", "selected_gold_mean", "first_sample_gold_mean", "examples"))
        lines.append(f"| {r['policy']} | {r['gold_mean']:.3f} | [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}] | {diff} | "
                     f"{dci} | {dsft} | {dsft_ci} | {notes} |")
    return "\n".join(lines)


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--rule", default="length", choices=["length", "final-number"])
    ap.add_argument("--max-words", type=int, default=20, help="length rule: the gold's word limit")
    ap.add_argument("--m", type=int, nargs="+", default=[1, 2, 4, 8], help="refinements per critique to compare")
    ap.add_argument("--train-prompts", type=int, default=128)
    ap.add_argument("--eval-prompts", type=int, default=100)
    ap.add_argument("--samples", type=int, default=2, help="held-out samples per prompt and policy")
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--temperature", type=float, default=0.7, help="refinement and response sampling")
    ap.add_argument("--eval-temperature", type=float, default=0.7)
    ap.add_argument("--refine-batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--max-steps", type=int, default=0)
    ap.add_argument("--max-length", type=int, default=384)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/bench-ilf")
    ap.add_argument("--progress", action="store_true", help="show progress bars")
    ap.add_argument("--tiny", action="store_true", help="a tiny random model and a few prompts: checks the "
                    "pipeline end to end in seconds; its numbers mean nothing")
    args = ap.parse_args(argv)
    if args.tiny:
        from rlhfkit.models import save_tiny

        args.model = str(save_tiny(Path(args.out) / "tiny-model", layers=2, hidden=32))
        args.rule = "final-number"  # random bytes never end with "The answer is N.": every response is critiqued
        args.train_prompts, args.eval_prompts, args.samples, args.m = 6, 6, 1, [1, 2]
        args.max_new_tokens, args.max_steps, args.lr, args.max_length = 8, 2, 1e-3, 256
    return args


def main(argv=None) -> dict:
    args = parse(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rule, gold = gold_rule(args.rule, args.max_words)
    from rlhfkit.data.atomic import atomic_write
    from rlhfkit.models import load_causal_lm

    t0 = time.perf_counter()
    train, held_out = make_prompts("train", args.train_prompts, args.seed), make_prompts("test", args.eval_prompts,
                                                                                        args.seed)
    model, tokenizer = load_causal_lm(args.model, dtype="fp32")
    triples_path = out / "critiques.jsonl"
    if triples_path.exists():  # a re-run critiques the same sampled responses (seeded): reuse them
        triples = [json.loads(line) for line in triples_path.read_text().splitlines() if line.strip()]
    else:
        responses = sample(model, tokenizer, train, 2, args.max_new_tokens, args.temperature, seed=args.seed)
        triples = simulate_critiques(train, responses, rule, args.seed)
        if not triples:
            raise SystemExit("the simulated annotator found nothing to critique: the starting policy already "
                             "satisfies the rule; choose a stricter rule (--max-words)")
        with atomic_write(triples_path) as f:
            f.write("".join(json.dumps(t, ensure_ascii=False) + "\n" for t in triples))

    def result(rows: list[dict]) -> dict:
        """Everything measured so far, rewritten after each policy: an hour-long run that is killed
        keeps the rows it finished."""
        res = {"rule": args.rule, "max_words": args.max_words if args.rule == "length" else None,
               "model": args.model, "train_prompts": len(train), "critiques": len(triples),
               "eval_prompts": len(held_out), "samples_per_prompt": args.samples,
               "seconds": time.perf_counter() - t0,
               "settings": {k: v for k, v in vars(args).items() if k not in ("progress",)}, "rows": rows}
        with atomic_write(out / "results.json") as f:
            f.write(json.dumps(res, indent=2) + "\n")
        return res

    (out / "eval").mkdir(exist_ok=True)
    start = evaluate(model, tokenizer, held_out, gold, args, out / "eval" / "start.json")
    rows = [summarise("start", start, start)]
    result(rows)
    m_sft, t_sft = train_sft_original(args, triples, out / "sft-original")
    sft = evaluate(m_sft, t_sft, held_out, gold, args, out / "eval" / "sft-original.json")
    rows.append(summarise("sft-original", sft, start, {"examples": len(triples)}))
    result(rows)
    for m in args.m:
        m_ilf, t_ilf, stats = train_ilf(args, triples_path, m, gold, out / f"ilf-m{m}")
        rows.append(summarise(f"ilf-m{m}", evaluate(m_ilf, t_ilf, held_out, gold, args, out / "eval" / f"ilf-m{m}.json"),
                              start, stats, sft=sft))
        res = result(rows)
    print(f"{args.rule} gold, {len(triples)} critiques of {2 * len(train)} responses, {len(held_out)} held-out "
          f"prompts x {args.samples} samples, {res['seconds']:.0f} s")
    print(table(rows))
    return res


if __name__ == "__main__":
    main()
