"""Does active selection pay? Pool-based active learning with the server's disagreement ranker.

Question (issue 11, section 4): with a known gold scorer, do reward models trained on labels
chosen by ensemble disagreement reach the accuracy of randomly chosen labels with >= 30% fewer
labels?

Setup, and where it departs from a full reward-model run:
- Items: the 1,593 usable HH-harmless train pairs are the unlabelled pool; the 299 test pairs are
  the held-out set. Only the two final answers of an item are compared (K = 2).
- Gold: a rule a person can state (``--gold``; default ``length40``: "the answer closest to 40
  words is better", ``rlhfkit.rewards.rules.length_target``). Pairs the gold cannot order (equal
  word counts, or both answers over 80 words) are dropped from pool and test.
- Labels: the calibrated default simulated pool (``rlhfkit.feedback.calibration.default_pool``,
  expected agreement 0.68 with the gold, with its length, position and sycophancy biases) labels
  every pool item once per seed; asking for an item's label reveals that draw. Accuracy is
  measured against the gold, not against the noisy labels.
- Reward model: SmolLM2-135M with the backbone frozen and ``--n-heads`` linear heads on the
  answer's last-token hidden state, i.e. ``rlhfkit reward train --n-heads N`` with every backbone
  weight frozen. The hidden states come from the reward model's own read-out once
  (benchmarks/active_features.py), so a head-training run is milliseconds. The heads are trained
  with the project's loop (``trainers.loop.fit``) and loss (the sum over heads of
  ``bradley_terry_loss``, as ``RewardModelTrainer.loss``), initialised as transformers initialises
  the score head (normal, std = initializer_range = 0.02). Differences from the real trainer: the
  final RMSNorm is frozen too (``--freeze-layers 30`` would leave its 576 weights trainable), and
  batches are a seeded shuffle rather than length buckets (the features have no length).
- Disagreement: ``ensemble_summary(...)["disagreement"]`` on the heads' rewards, the quantity
  ``rlhfkit.rewards.ensemble.pair_disagreement`` returns for the server's ranker (for K = 2 the
  ranker's item score is that one pair's value); tests/test_active_selection.py checks that the
  two agree on a tiny model.
- Strategies, batch mode: start from the same random ``budgets[0]`` labels; at each budget train
  the ensemble, measure test accuracy, then label the next ``budgets[k+1] - budgets[k]`` items:
  ``random`` (seeded), ``disagreement`` (the top-scored unlabelled items) or ``mixed`` (half each,
  a standard fix when pure uncertainty sampling chases label noise).

    flock /tmp/rlhfkit-heavy.lock nice -n 10 python benchmarks/active_selection.py --seeds 0,1,2,3,4
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

STRATEGIES = ("random", "disagreement", "mixed")
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


# --------------------------------------------------------------------------- gold scorers
def _words(text: str) -> int:
    return len(text.split())


def length_gold(target: int):
    """Gold ``(prompt, answer) -> length_target score``: 1 at ``target`` words, 0 at 0 and 2x."""
    from rlhfkit.rewards.rules import length_target

    def gold(prompt: str, answer: str) -> float:
        return length_target([prompt], [answer], target=target)[0]

    gold.__name__ = f"length_target(target={target})"
    return gold


GOLDS = {"length40": lambda: length_gold(40), "length25": lambda: length_gold(25)}


# --------------------------------------------------------------------------- selection
def ensemble_rewards(head, xc, xr):
    """Member rewards (chosen (N, H), rejected (N, H)) of the heads on cached features (N, D)."""
    import torch

    with torch.no_grad():
        return head(xc).float(), head(xr).float()


def disagreement_scores(head, xc, xr):
    """(N,) the server ranker's disagreement: std over heads of the margin r_c - r_r."""
    from rlhfkit.models.reward_model import ensemble_summary

    return ensemble_summary(*ensemble_rewards(head, xc, xr))["disagreement"]


def select(strategy: str, scores, unlabelled: list[int], n: int, rng: random.Random) -> list[int]:
    """The next ``n`` pool indices to label.

    random: a seeded sample; disagreement: the ``n`` highest scores (ties by index);
    mixed: the ``ceil(n/2)`` highest scores, then a seeded sample of the rest.
    ``scores`` is indexed by pool index (ignored by ``random``).
    """
    if n > len(unlabelled):
        raise ValueError(f"asked for {n} items but only {len(unlabelled)} are unlabelled")
    if strategy == "random":
        return rng.sample(unlabelled, n)
    by_score = sorted(unlabelled, key=lambda i: (-float(scores[i]), i))
    if strategy == "disagreement":
        return by_score[:n]
    if strategy == "mixed":
        top = by_score[: math.ceil(n / 2)]
        chosen = set(top)
        return top + rng.sample([i for i in unlabelled if i not in chosen], n - len(top))
    raise ValueError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")


# --------------------------------------------------------------------------- head training
@dataclass
class HeadConfig:
    n_heads: int = 5
    lr: float = 1e-3
    steps: int = 200
    batch_size: int = 32
    weight_decay: float = 0.0
    bootstrap: bool = False  # each head sees its own bootstrap resample (bagging), not the same data


class HeadTrainer:
    """The reward heads on frozen features, as a ``trainers.loop`` trainer: the same loss as
    ``RewardModelTrainer.loss`` (sum over heads of each head's Bradley-Terry loss)."""

    name = "reward-heads"

    def __init__(self, xc, xr, hc: HeadConfig, seed: int):
        import torch

        from rlhfkit.trainers.config import RewardTrainConfig

        self.cfg = RewardTrainConfig(lr=hc.lr, max_steps=hc.steps, batch_size=hc.batch_size, seed=seed,
                                     weight_decay=hc.weight_decay, warmup_ratio=0.0, lr_schedule="cosine",
                                     progress=False, log_every=10**9, out="")
        self.xc, self.xr, self.step = xc, xr, 0
        gen = torch.Generator().manual_seed(seed)
        self.model = torch.nn.Linear(xc.shape[1], hc.n_heads, bias=False)
        with torch.no_grad():  # LlamaForSequenceClassification's score init: normal(0, 0.02)
            self.model.weight.copy_(torch.randn(self.model.weight.shape, generator=gen) * 0.02)
        self._rng = random.Random(seed)
        self._order: list[int] = []
        # bagging as per-pair counts: head h weights pair i by how often a bootstrap draw of n
        # pairs picked it, which is training member h on its own resample
        self.boot = None
        if hc.bootstrap:
            draws = torch.randint(len(xc), (hc.n_heads, len(xc)), generator=gen)  # (H, n)
            self.boot = torch.stack([torch.bincount(d, minlength=len(xc)) for d in draws]).float()

    def total_steps(self) -> int:
        from rlhfkit.trainers import loop

        return loop.steps_for(len(self.xc), self.cfg)[1]

    def batch_for_step(self, step: int) -> list[int]:
        if len(self._order) < self.cfg.global_batch:  # a fresh seeded shuffle per pass
            self._order += self._rng.sample(range(len(self.xc)), len(self.xc))
        batch, self._order = self._order[: self.cfg.global_batch], self._order[self.cfg.global_batch :]
        return batch

    def micro_batches(self, indices: list[int]) -> list[tuple]:
        return [(indices, float(len(indices)))]

    def loss(self, indices: list[int]):
        from rlhfkit.losses.reward import bradley_terry_loss

        chosen, rejected = self.model(self.xc[indices]), self.model(self.xr[indices])  # (b, H)
        loss, metrics = 0.0, {}
        for h in range(chosen.shape[1]):
            weights = None if self.boot is None else self.boot[h, indices]  # (b,)
            if weights is not None and float(weights.sum()) == 0.0:
                continue  # this head drew none of the batch's pairs
            head_loss, metrics = bradley_terry_loss(chosen[:, h], rejected[:, h], weights=weights)
            loss = loss + head_loss
        return loss, {k: v for k, v in metrics.items() if k != "loss"}


def train_heads(xc, xr, hc: HeadConfig, seed: int):
    """Heads (a Linear D -> H) trained on pairs oriented by their labels (xc = preferred)."""
    from rlhfkit.trainers import loop

    loop.seed_everything(seed)
    trainer = HeadTrainer(xc, xr, hc, seed)
    loop.fit(trainer, None, description="heads")
    return trainer.model.eval()


def gold_accuracy(head, xc, xr, gold_first) -> float:
    """Share of pairs where the ensemble's mean margin orders them as the gold does."""
    from rlhfkit.models.reward_model import ensemble_summary

    margin = ensemble_summary(*ensemble_rewards(head, xc, xr))["margin"]  # (N,)
    return float(((margin > 0) == gold_first).float().mean())


# --------------------------------------------------------------------------- the experiment
def oriented(x_first, x_second, idx: list[int], first_preferred):
    """(preferred (n, D), other (n, D)) of the pool items ``idx`` under their labels."""
    import torch

    i = torch.tensor(idx)
    keep = first_preferred[i].unsqueeze(1)  # (n, 1)
    a, b = x_first[i], x_second[i]
    return torch.where(keep, a, b), torch.where(keep, b, a)


def run_strategy(strategy: str, data: dict, labels, budgets: list[int], hc: HeadConfig, seed: int) -> list[dict]:
    """Accuracy against gold at every budget for one strategy and seed."""
    pool, test = data["pool"], data["test"]
    n_pool = len(pool["chosen"])
    rng = random.Random(f"{seed}-initial")
    labelled = rng.sample(range(n_pool), budgets[0])  # the same start for every strategy
    rng = random.Random(f"{seed}-{strategy}")
    rows = []
    for k, budget in enumerate(budgets):
        xc, xr = oriented(pool["chosen"], pool["rejected"], labelled, labels)
        head = train_heads(xc, xr, hc, seed=1000 * seed + k)
        acc = gold_accuracy(head, test["chosen"], test["rejected"], test["gold_first"])
        label_gold = float((labels[labelled] == pool["gold_first"][labelled]).float().mean())
        rows.append({"strategy": strategy, "seed": seed, "labels": budget, "accuracy": acc,
                     "label_agreement_with_gold": label_gold})
        if k + 1 < len(budgets):
            taken = set(labelled)
            unlabelled = [i for i in range(n_pool) if i not in taken]
            scores = disagreement_scores(head, pool["chosen"], pool["rejected"]) if strategy != "random" else None
            labelled = labelled + select(strategy, scores, unlabelled, budgets[k + 1] - budget, rng)
    return rows


def prepare(data: dict, gold_name: str) -> dict:
    """Gold preferences of pool and test; pairs the gold cannot order are dropped."""
    import torch

    gold = GOLDS[gold_name]()
    out = {}
    for split in ("pool", "test"):
        pairs = data[split]["pairs"]
        prompts = [_prompt_text(p["prompt"]) for p in pairs]
        diff = [gold(q, p["chosen"]) - gold(q, p["rejected"]) for q, p in zip(prompts, pairs)]
        keep = [i for i, d in enumerate(diff) if abs(d) > 1e-12]
        idx = torch.tensor(keep)
        out[split] = {"chosen": data[split]["chosen"][idx], "rejected": data[split]["rejected"][idx],
                      "gold_first": torch.tensor([diff[i] > 0 for i in keep]),
                      "prompts": [prompts[i] for i in keep], "pairs": [pairs[i] for i in keep],
                      "dropped": len(pairs) - len(keep)}
    out["gold"] = gold
    return out


def _prompt_text(prompt) -> str:
    from rlhfkit.feedback.simulate import prompt_as_text

    return prompt_as_text(prompt)


def pool_labels(prep: dict, seed: int):
    """(N,) bool: the calibrated default pool prefers the pool item's first (HH-chosen) answer.
    One draw per item and seed, shared by every strategy (the same annotator answer for the
    same question)."""
    import torch

    from rlhfkit.feedback.calibration import default_pool
    from rlhfkit.schema import PreferenceItem, Response

    pool = prep["pool"]
    items = [PreferenceItem(prompt=q, responses=[Response(text=p["chosen"]), Response(text=p["rejected"])])
             for q, p in zip(pool["prompts"], pool["pairs"])]
    annotators = default_pool(prep["gold"], items, seed=seed, gold_name=prep["gold"].__name__)
    labels = [annotators.label_pair(q, p["chosen"], p["rejected"])[1] for q, p in zip(pool["prompts"], pool["pairs"])]
    if any(v == 0.5 for v in labels):
        raise ValueError("the pool produced a tie; this experiment expects strict labels")
    return torch.tensor([v == 1.0 for v in labels])


# --------------------------------------------------------------------------- summaries
def mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% t interval over seeds."""
    m = statistics.fmean(values)
    if len(values) < 2:
        return m, float("nan")
    return m, T95.get(len(values) - 1, 1.96) * statistics.stdev(values) / math.sqrt(len(values))


def labels_to_reach(budgets: list[int], accuracies: list[float], target: float) -> float | None:
    """Fewest labels at which a mean curve reaches ``target``, interpolated linearly in
    log(labels) between budgets; None if it never does."""
    for k, (b, a) in enumerate(zip(budgets, accuracies)):
        if a >= target:
            if k == 0:
                return float(b)
            b0, a0 = budgets[k - 1], accuracies[k - 1]
            t = (target - a0) / (a - a0)
            return math.exp(math.log(b0) + t * (math.log(b) - math.log(b0)))
    return None


def summarize(rows: list[dict], budgets: list[int], strategies: list[str]) -> dict:
    curves = {}
    for s in strategies:
        curves[s] = [mean_ci([r["accuracy"] for r in rows if r["strategy"] == s and r["labels"] == b])
                     for b in budgets]
    target = curves["random"][-1][0] if "random" in curves else None
    reach = {s: labels_to_reach(budgets, [m for m, _ in curves[s]], target) for s in strategies} if target else {}
    # paired by seed (same start, same label draws, same test pairs): strategy minus random
    acc = {(r["strategy"], r["seed"], r["labels"]): r["accuracy"] for r in rows}
    seeds = sorted({r["seed"] for r in rows})
    paired = {s: [mean_ci([acc[(s, sd, b)] - acc[("random", sd, b)] for sd in seeds]) for b in budgets]
              for s in strategies if s != "random" and "random" in strategies}
    agree = {s: statistics.fmean(r["label_agreement_with_gold"] for r in rows
                                 if r["strategy"] == s and r["labels"] == budgets[-1]) for s in strategies}
    return {"curves": curves, "random_final": target, "labels_to_reach_random_final": reach,
            "paired_minus_random": paired, "label_agreement_at_max": agree}


def table(summary: dict, budgets: list[int]) -> str:
    strategies = list(summary["curves"])
    head = "| labels | " + " | ".join(f"{s} acc (95% CI)" for s in strategies) + " |"
    lines = [head, "|" + " --- |" * (len(strategies) + 1)]
    for k, b in enumerate(budgets):
        cells = [f"{m:.3f} ± {h:.3f}" for m, h in (summary["curves"][s][k] for s in strategies)]
        lines.append(f"| {b} | " + " | ".join(cells) + " |")
    paired = summary.get("paired_minus_random", {})
    if paired:
        lines += ["", "| labels | " + " | ".join(f"{s} - random (paired, 95% CI)" for s in paired) + " |",
                  "|" + " --- |" * (len(paired) + 1)]
        for k, b in enumerate(budgets):
            lines.append(f"| {b} | " + " | ".join(f"{paired[s][k][0]:+.3f} ± {paired[s][k][1]:.3f}" for s in paired) + " |")
    lines.append("")
    for s, agree in summary.get("label_agreement_at_max", {}).items():
        lines.append(f"- {s}: agreement of the {budgets[-1]} labels used with the gold: {agree:.3f} (mean over seeds)")
    target = summary["random_final"]
    for s, n in summary["labels_to_reach_random_final"].items():
        saving = "never reached" if n is None else f"{n:.0f} labels ({1 - n / budgets[-1]:+.0%} saving)"
        lines.append(f"- {s}: labels to reach random's final mean accuracy {target:.3f}: {saving}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--features", default="runs/active/features.pt", help="cache written by active_features.py")
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--gold", choices=sorted(GOLDS), default="length40")
    p.add_argument("--budgets", default="50,100,200,400,800")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--strategies", default=",".join(STRATEGIES))
    p.add_argument("--n-heads", type=int, default=5)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--steps", type=int, default=200, help="optimiser steps per training (any label count)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--bootstrap", action="store_true",
                   help="bagged ensemble: each head trained on its own bootstrap resample of the labels")
    p.add_argument("--out", default="runs/active/results.json")
    p.add_argument("--summarize", default="", help="only print the tables of a results.json written earlier")
    return p


def main(argv: list[str] | None = None) -> None:
    import torch

    from active_features import load_or_extract

    args = build_parser().parse_args(argv)
    if args.summarize:  # re-print the tables of a finished run
        saved = json.loads(Path(args.summarize).read_text())
        budgets = [int(b) for b in saved["args"]["budgets"].split(",")]
        print(table(summarize(saved["rows"], budgets, saved["args"]["strategies"].split(",")), budgets))
        return
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    budgets = [int(b) for b in args.budgets.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    strategies = args.strategies.split(",")
    hc = HeadConfig(args.n_heads, args.lr, args.steps, args.batch_size, args.weight_decay, args.bootstrap)
    t0 = time.perf_counter()
    data = load_or_extract(args.features, args.model, max_length=args.max_length)
    prep = prepare(data, args.gold)
    print(f"gold {prep['gold'].__name__}: pool {len(prep['pool']['pairs'])} pairs "
          f"({prep['pool']['dropped']} gold ties dropped), test {len(prep['test']['pairs'])} "
          f"({prep['test']['dropped']} dropped); features {time.perf_counter() - t0:.0f} s", flush=True)
    rows = []
    for seed in seeds:
        labels = pool_labels(prep, seed)
        agree = float((labels == prep["pool"]["gold_first"]).float().mean())
        for s in strategies:
            rows += run_strategy(s, prep, labels, budgets, hc, seed)
            print(f"seed {seed} {s:12s} pool-label agreement {agree:.3f}  acc "
                  + " ".join(f"{r['accuracy']:.3f}" for r in rows[-len(budgets):]), flush=True)
    summary = summarize(rows, budgets, strategies)
    print(table(summary, budgets))
    print(f"total {time.perf_counter() - t0:.0f} s")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"args": vars(args), "rows": rows, "summary": summary}, indent=1))


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
