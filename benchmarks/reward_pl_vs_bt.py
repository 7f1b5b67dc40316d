"""Plackett-Luce on whole rankings vs Bradley-Terry on the same rankings expanded into pairs.

A simulated-ranking data set with a known gold scorer: each item is a fixed prompt and K
responses of ``--length`` letters drawn from the first ``--letters`` of "abcdefgh"; the gold
score is the sum of the letters' values, spaced evenly from +1 (a) to -1 (the last letter), so
with ``--letters 2`` it is (count of a) - (count of b), a count of one token. A simulated
annotator (``rlhfkit.feedback.simulate``: Gumbel-perturbed gold scores at ``--temperature``,
i.e. a Plackett-Luce sample, with scores closer than ``--tie-tolerance`` tied) ranks each item.
The same rankings train two tiny reward models from the same initialisation:

- ``pl``: one example per ranking (``--loss pl``, one packed row [prompt | r1 | ... | rK]);
- ``bt``: every pair the ranking implies (``rlhfkit.schema.item_to_pairs``, ties give none).

Same initialisation, batch size (examples per batch), learning rate and constant schedule. BT is
trained twice: ``bt`` for the same number of epochs as PL (so about K(K-1)/2 times as many
optimiser steps and more compute: the conservative comparison for PL) and ``bt_same_steps``
stopped at PL's number of optimiser steps. Held-out: fresh response pairs with
different gold scores, the one with the higher gold score is "chosen"; accuracy = share ranked as gold ranks
them. Prints one JSON line per (seed, loss) and a summary line.

    flock /tmp/rlhfkit-heavy.lock nice -n 10 python benchmarks/reward_pl_vs_bt.py
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rankings", type=int, default=64, help="training rankings (items of K responses)")
    p.add_argument("--k", type=int, default=4, help="responses per ranking")
    p.add_argument("--length", type=int, default=12, help="letters per response")
    p.add_argument("--letters", type=int, default=6, help="alphabet size (2..8); values from +1 to -1")
    p.add_argument("--temperature", type=float, default=1.0, help="annotator noise: gold / T + Gumbel")
    p.add_argument("--tie-tolerance", type=float, default=0.3, help="noisy scores this close are tied")
    p.add_argument("--eval-pairs", type=int, default=600)
    p.add_argument("--epochs", default="2,5,10,20", help="comma list: PL's training budgets in epochs")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--seeds", type=int, default=5, help="data and initialisation seeds 0..N-1")
    return p


LETTERS = "abcdefgh"


def letter_values(n: int) -> dict[str, float]:
    return {ch: 1.0 - 2.0 * i / (n - 1) for i, ch in enumerate(LETTERS[:n])}


def make_gold(n_letters: int):
    values = letter_values(n_letters)

    def gold(prompt: str, text: str) -> float:
        return round(sum(values[ch] for ch in text), 9)  # rounded: equal counts give equal scores

    return gold


def responses(rng: random.Random, n: int, length: int, n_letters: int) -> list[str]:
    return ["".join(rng.choice(LETTERS[:n_letters]) for _ in range(length)) for _ in range(n)]


def make_data(args, seed: int):
    from rlhfkit.feedback.simulate import AnnotatorPool, SimulatedAnnotator
    from rlhfkit.schema import PreferenceItem, PreferencePair

    rng = random.Random(seed)
    gold = make_gold(args.letters)
    items = [PreferenceItem(prompt="Write a line:",
                            responses=[{"text": t} for t in responses(rng, args.k, args.length, args.letters)])
             for _ in range(args.rankings)]
    annotator = SimulatedAnnotator("sim", gold=gold, temperature=args.temperature, tie_tolerance=args.tie_tolerance)
    items = AnnotatorPool([annotator], seed=seed).label_items(items, mode="ranking")
    held_out = []
    while len(held_out) < args.eval_pairs:
        a, b = responses(rng, 2, args.length, args.letters)
        if gold("", a) != gold("", b):
            c, r = (a, b) if gold("", a) > gold("", b) else (b, a)
            held_out.append(PreferencePair(prompt="Write a line:", chosen=c, rejected=r))
    return items, held_out


def train_one(args, loss: str, examples: list, held_out: list, model_dir: str, seed: int, epochs: float,
              max_steps: int = 0):
    from rlhfkit.trainers.reward_model import RewardModelTrainer, RewardTrainConfig

    cfg = RewardTrainConfig(model=model_dir, out="", loss=loss, max_length=64, batch_size=args.batch_size,
                            lr=args.lr, epochs=epochs, max_steps=max_steps, warmup_ratio=0.0,
                            lr_schedule="constant", seed=seed, progress=False, log_every=10**9, resume=False)
    trainer = RewardModelTrainer(cfg, train_pairs=examples, eval_pairs=held_out).setup()
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    summary = trainer.evaluate(n_boot=200)
    return {"loss": loss, "seed": seed, "epochs": epochs, "examples": len(examples), "steps": trainer.total_steps(),
            "accuracy": summary["accuracy"], "accuracy_ci95": summary["accuracy_ci95"], "ece": summary["ece"],
            "train_s": round(seconds, 1)}


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    import torch

    from rlhfkit.data.reward_labels import reward_examples
    from rlhfkit.models import save_tiny

    torch.set_num_threads(1)
    results = []
    budgets = [float(e) for e in args.epochs.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            model_dir = str(save_tiny(f"{tmp}/tiny-{seed}", layers=args.layers, hidden=args.hidden, seed=seed))
            items, held_out = make_data(args, seed)
            rankings, pairs = reward_examples(items, "pl"), reward_examples(items, "bt")
            for epochs in budgets:
                pl = train_one(args, "pl", rankings, held_out, model_dir, seed, epochs)
                bt = train_one(args, "bt", pairs, held_out, model_dir, seed, epochs)
                bt_steps = {**train_one(args, "bt", pairs, held_out, model_dir, seed, epochs, max_steps=pl["steps"]),
                            "loss": "bt_same_steps"}
                for r in (pl, bt, bt_steps):
                    print(json.dumps(r), flush=True)
                results += [pl, bt, bt_steps]
    print(json.dumps({"settings": vars(args), "table": summarize(results, budgets)}))


def summarize(results: list[dict], budgets: list[float]) -> list[dict]:
    """Per budget and loss: mean (sd) accuracy over seeds, mean ECE, steps, seconds, and PL's
    paired per-seed difference."""
    rows = []
    for epochs in budgets:
        runs = {loss: [r for r in results if r["loss"] == loss and r["epochs"] == epochs]
                for loss in ("pl", "bt", "bt_same_steps")}
        for loss, rs in runs.items():
            acc = [r["accuracy"] for r in rs]
            row = {"epochs": epochs, "loss": loss, "mean_accuracy": round(statistics.mean(acc), 4),
                   "sd": round(statistics.stdev(acc), 4) if len(acc) > 1 else 0.0,
                   "mean_ece": round(statistics.mean(r["ece"] for r in rs), 4),
                   "mean_steps": statistics.mean(r["steps"] for r in rs),
                   "mean_train_s": round(statistics.mean(r["train_s"] for r in rs), 1)}
            if loss != "pl":
                diffs = [p["accuracy"] - b["accuracy"] for p, b in zip(runs["pl"], rs)]
                row["pl_minus_this"] = round(statistics.mean(diffs), 4)
                row["pl_at_least_as_accurate_seeds"] = f"{sum(d >= 0 for d in diffs)}/{len(diffs)}"
            rows.append(row)
    # each loss at its best budget per seed (an oracle choice, the same for both losses)
    seeds = sorted({r["seed"] for r in results})
    best = {loss: [max(r["accuracy"] for r in results if r["loss"] == loss and r["seed"] == s) for s in seeds]
            for loss in ("pl", "bt")}
    for loss in ("pl", "bt"):
        rows.append({"epochs": "best", "loss": loss, "mean_accuracy": round(statistics.mean(best[loss]), 4),
                     "sd": round(statistics.stdev(best[loss]), 4) if len(seeds) > 1 else 0.0})
    diffs = [p - b for p, b in zip(best["pl"], best["bt"])]
    rows[-1].update(pl_minus_this=round(statistics.mean(diffs), 4),
                    pl_at_least_as_accurate_seeds=f"{sum(d >= 0 for d in diffs)}/{len(diffs)}")
    return rows


if __name__ == "__main__":
    main()
