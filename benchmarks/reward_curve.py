"""Where the HH reward model's accuracy is limited: a learning curve over training pairs and an
ablation at full data (issue 15, section 3).

Every run trains the reward recipe (``--recipe``, default ``recipes/reward-hh-fast.yaml``: SmolLM2-135M,
max_length 128, batch 8, lr 5e-5, 1 epoch, warm-up 0.05, cosine, fp32, packing, 24 of 30
layers frozen) through ``RewardModelTrainer`` and scores the held-out HH test pairs with the
library's evaluation (``score_pairs`` + ``summarize_scores``: accuracy, ties wrong, percentile
bootstrap 95% CI over pairs). Runs (``--runs``, a comma list of names or the groups ``curve``
and ``ablations``; default all):

- ``curve-N``: a seeded random subset of N training pairs (``--curve``, default 100, 200, 400,
  800 and all 1,593); the subset is the first N of one seeded permutation, so for one seed the
  subsets are nested. ``--seeds K`` repeats the curve with seeds 0..K-1 (the seed also sets the
  head's initialisation and the batch order).
- ablations at full data, seed 0, one setting changed each: ``len256`` (max_length 256),
  ``freeze12`` (freeze_layers 12), ``lora`` (freeze_layers 0 with LoRA r 16, alpha 32 on every
  q/k/v/o/gate/up/down projection: PEFT's SEQ_CLS task trains the adapters and the score head;
  embeddings, norms and base weights stay fixed; ``--lora-lr`` sets its learning rate),
  ``epochs2`` (2 epochs). Plackett-Luce vs Bradley-Terry does not apply: HH holds pairs only.

Each finished run appends one JSON line to ``OUT/results.jsonl`` (rewritten atomically, so a
``kill -9`` leaves the previous file) and is skipped when the script is run again with the same
settings; a recorded run whose settings differ is refused rather than mixed in. The line holds
the settings, pairs, steps, trainable parameters, minutes (set-up, training, evaluation), test
accuracy with its CI, and accuracy on a fixed train slice: the first ``--train-slice`` (300)
pairs of the seed's permutation that the run trained on (all 300 from N = 400 up), so over- and
underfitting show. Both are scored at the run's own max_length. At the end it prints a markdown
table for ``benchmarks/RESULTS.md`` (each ablation also as its accuracy minus the recipe run's,
``curve-all`` seed 0, on the same test pairs with a paired bootstrap CI) and one line reading
the curve: the slope of test accuracy per doubling of pairs between the two largest curve
points, with a paired bootstrap 95% CI over the test pairs, and one line fitting a straight line
of accuracy on log2(pairs) through every curve point (same bootstrap), with the number of pairs
at which that line reaches ``--target``.

Before running it prints the expected minutes of each run, scaled from the recipe's measured
1,593 pairs = 200 steps = 8.6 min (training + a 299-pair evaluation, quiet machine) by pairs x
epochs and the per-pair work (``estimate_minutes``).

    flock /tmp/rlhfkit-heavy.lock env OMP_NUM_THREADS=2 HF_HUB_OFFLINE=1 \\
        .venv/bin/python benchmarks/reward_curve.py --runs curve --out runs/reward-curve
    ... --runs lora --out runs/reward-curve     # one ablation; the table covers the whole folder
    ... --dry-run                                # the plan and the minutes estimate only

``--tiny`` swaps in a tiny random model and a few pairs so the whole pipeline runs in seconds.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's rlhfkit, not another one installed in the venv
HH = "/work/shared/data/hh-harmless"
CURVE = "100,200,400,800,all"
TINY_CURVE = "8,16,all"
TINY_TRAIN_PAIRS, TINY_TEST_PAIRS = 32, 16
ABLATIONS = ("len256", "freeze12", "lora", "epochs2")
GROUPS = ("curve", "ablations")
# The recipe's measured run (recipes/reward-hh-fast.yaml, which the ablations vary, 2026-11-29, quiet machine): training
# on all 1,593 pairs (200 steps) and the final evaluation on the 299 test pairs took 8.6 min.
BASE_RUN = {"pairs": 1593, "steps": 200, "minutes": 8.6, "eval_pairs": 299, "layers": 30,
            "freeze_layers": 24, "max_length": 128}
# settings recorded per run and compared on resume (the rest of the config is bookkeeping)
SETTING_KEYS = ("model", "loss", "max_length", "batch_size", "grad_accum", "lr", "weight_decay", "max_grad_norm",
                "epochs", "max_steps", "warmup_steps", "warmup_ratio", "lr_schedule", "dtype", "packing",
                "freeze_layers", "lora_r", "lora_alpha", "n_heads", "label_smoothing", "center_rewards_coef",
                "bootstrap", "seed", "eval_batch_size")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", default=str(REPO / "recipes" / "reward-hh-fast.yaml"),
                   help="base settings (a reward recipe); its data/out keys are not used")
    p.add_argument("--train", default=f"{HH}/train.jsonl", help="training pairs (any supported format)")
    p.add_argument("--test", default=f"{HH}/test.jsonl", help="held-out pairs for test accuracy")
    p.add_argument("--out", default="runs/reward-curve", help="results.jsonl and per-run metrics go here")
    p.add_argument("--runs", default="", help="comma list of run names or groups (curve, ablations); "
                   "default: all. Names: curve-N for each --curve size, " + ", ".join(ABLATIONS))
    p.add_argument("--curve", default=None, help=f"comma list of training-pair counts, 'all' = every pair "
                   f"(default {CURVE}; {TINY_CURVE} with --tiny)")
    p.add_argument("--seeds", type=int, default=1, help="repeat the curve with seeds 0..K-1 (ablations: seed 0)")
    p.add_argument("--train-slice", type=int, default=300,
                   help="train accuracy is measured on this many of the run's own training pairs")
    p.add_argument("--lora-r", type=int, default=16, help="LoRA rank of the lora ablation")
    p.add_argument("--lora-alpha", type=float, default=32.0, help="LoRA alpha of the lora ablation")
    p.add_argument("--lora-lr", type=float, default=None, help="learning rate of the lora ablation "
                   "(default: the recipe's)")
    p.add_argument("--target", type=float, default=0.65, help="accuracy the curve reading measures against")
    p.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples for the CIs")
    p.add_argument("--tiny", action="store_true", help=f"a tiny random model, the first {TINY_TRAIN_PAIRS} "
                   f"training and {TINY_TEST_PAIRS} test pairs: the pipeline end to end in seconds")
    p.add_argument("--progress", action="store_true", help="show the trainer's progress bar")
    p.add_argument("--dry-run", action="store_true", help="print the plan and the estimates, run nothing")
    return p


def parse_args(argv=None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.curve = args.curve or (TINY_CURVE if args.tiny else CURVE)
    try:
        args.curve_sizes = parse_curve(args.curve)
    except ValueError as err:
        parser.error(f"--curve: {err}")
    if args.seeds < 1:
        parser.error("--seeds must be >= 1")
    if args.train_slice < 1 or args.lora_r < 1 or args.n_boot < 100:
        parser.error("--train-slice and --lora-r must be >= 1, --n-boot >= 100")
    names = run_names(args.curve_sizes)
    wanted = [w.strip() for w in args.runs.split(",") if w.strip()] if args.runs else list(names)
    unknown = [w for w in wanted if w not in names and w not in GROUPS]
    if unknown:
        parser.error(f"--runs: unknown {', '.join(unknown)}; choose from {', '.join(GROUPS + tuple(names))}")
    args.run_names = [n for n in names if n in wanted
                      or ("curve" in wanted and n.startswith("curve-")) or ("ablations" in wanted and n in ABLATIONS)]
    return args


def parse_curve(text: str) -> list[int | None]:
    """'100,200,all' -> [100, 200, None] (None = every pair), increasing, no repeats."""
    sizes: list[int | None] = []
    for part in (p.strip() for p in text.split(",")):
        if part == "all":
            sizes.append(None)
        elif part.isdigit() and int(part) > 0:
            sizes.append(int(part))
        else:
            raise ValueError(f"{part!r} is not a positive pair count or 'all'")
    numbers = [s for s in sizes if s is not None]
    if numbers != sorted(set(numbers)) or sizes.count(None) > 1 or (None in sizes and sizes[-1] is not None):
        raise ValueError("sizes must increase, without repeats, 'all' last")
    return sizes


def run_names(curve_sizes: list[int | None]) -> list[str]:
    return [f"curve-{'all' if n is None else n}" for n in curve_sizes] + list(ABLATIONS)


# --------------------------------------------------------------------------- the runs
@dataclass
class Run:
    """One training run: ``overrides`` on top of the recipe, on ``n_pairs`` of the seed's permutation."""

    name: str
    seed: int
    n_pairs: int
    overrides: dict = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, int]:
        return self.name, self.seed


def ablation_overrides(name: str, args) -> dict:
    lora_lr = {} if args.lora_lr is None else {"lr": args.lora_lr}
    return {"len256": {"max_length": 256}, "freeze12": {"freeze_layers": 12},
            "lora": {"freeze_layers": 0, "lora_r": args.lora_r, "lora_alpha": args.lora_alpha, **lora_lr},
            "epochs2": {"epochs": 2.0}}[name]


def plan(args, n_total: int) -> list[Run]:
    """The selected runs in table order: the curve (each seed), then the ablations (seed 0)."""
    runs = []
    for seed in range(args.seeds):
        for n in args.curve_sizes:
            name = f"curve-{'all' if n is None else n}"
            if name in args.run_names:
                if n is not None and n > n_total:
                    raise SystemExit(f"{args.train}: --curve asks for {n} pairs, the file has {n_total}")
                runs.append(Run(name, seed, n_total if n is None else n))
    runs += [Run(name, 0, n_total, ablation_overrides(name, args)) for name in ABLATIONS if name in args.run_names]
    return runs


def subset_indices(n_total: int, n: int, seed: int) -> list[int]:
    """The first n of a seeded permutation of range(n_total): for one seed, a smaller subset is
    contained in every larger one (nested), so the curve compares data amounts, not draws."""
    order = list(range(n_total))
    random.Random(f"reward-curve-{seed}").shuffle(order)
    return order[:n]


def estimate_minutes(n_pairs: int, epochs: float, max_length: int, freeze_layers: int, lora: bool,
                     eval_pairs: int, layers: int = BASE_RUN["layers"]) -> float:
    """Expected minutes of one run, scaled from the recipe's measured run (``BASE_RUN``).

    Work is counted in layer-passes per pair: a forward pass through all L layers costs L; the
    backward pass through the T = L - freeze trainable layers costs 2T (gradients of activations
    and of weights), and with LoRA (every weight fixed, adapters tiny) L (activation gradients
    must still reach the first adapter), adapters' own cost not counted. Training costs
    pairs x epochs x (L + backward), evaluation eval_pairs x L, both x max_length / 128: nearly
    every HH pair is cut at 128 tokens, so for longer limits it is an upper bound. The base run
    (1,593 pairs, T = 6, 299 test pairs) = 8.6 min fixes the minutes per layer-pass.
    """
    def work(pairs, ep, length, freeze, with_lora, n_eval):
        backward = layers if with_lora else 2 * (layers - min(freeze, layers))
        return (pairs * ep * (layers + backward) + n_eval * layers) * length / BASE_RUN["max_length"]

    base = work(BASE_RUN["pairs"], 1.0, BASE_RUN["max_length"], BASE_RUN["freeze_layers"], False,
                BASE_RUN["eval_pairs"])
    return BASE_RUN["minutes"] * work(n_pairs, epochs, max_length, freeze_layers, lora, eval_pairs) / base


# --------------------------------------------------------------------------- results file
def read_results(path: Path) -> list[dict]:
    """The recorded runs; a line that is not a JSON object is an error naming the file and line."""
    if not path.exists():
        return []
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise SystemExit(f"{path}:{lineno}: not a JSON line ({err.msg}); fix or remove it") from None
        if not isinstance(row, dict) or "name" not in row or "seed" not in row or "settings" not in row:
            raise SystemExit(f"{path}:{lineno}: a result line needs name, seed and settings")
        rows.append(row)
    return rows


def append_result(path: Path, row: dict) -> None:
    """Rewrite the file with one more line through ``atomic_write``: a kill part-way leaves the
    previous file, never half a line."""
    from rlhfkit.data.atomic import atomic_write

    old = path.read_text(encoding="utf-8") if path.exists() else ""
    with atomic_write(path) as fh:
        fh.write(old + json.dumps(row) + "\n")


def recorded(rows: list[dict], run: Run, settings: dict, path: Path) -> dict | None:
    """The recorded result of ``run``, or None; one recorded with other settings is refused."""
    for row in rows:
        if (row["name"], row["seed"]) == run.key:
            if row["settings"] != settings:
                diff = sorted(k for k in set(settings) | set(row["settings"])
                              if settings.get(k) != row["settings"].get(k))
                changes = ", ".join(f"{k}: {row['settings'].get(k)!r} -> {settings.get(k)!r}" for k in diff)
                raise SystemExit(f"{path}: {run.name} seed {run.seed} was recorded with other settings "
                                 f"({changes}); use another --out or remove that line")
            return row
    return None


# --------------------------------------------------------------------------- statistics
def percentile_95(boots: list[float]) -> tuple[float, float]:
    """The 2.5% and 97.5% points of sorted bootstrap values (the percentile 95% CI)."""
    n = len(boots)
    return boots[int(math.floor(0.025 * n))], boots[min(n - 1, int(math.ceil(0.975 * n)) - 1)]


def slope_per_doubling(points: list[tuple[int, dict[int, list[bool]]]], n_boot: int = 2000, seed: int = 0) -> dict:
    """Slope of test accuracy per doubling of training pairs between the two largest curve points.

    ``points``: (pairs, {seed: correctness list}), every list on the same test pairs. Accuracy
    at a point is the mean over its seeds; slope = (acc_2 - acc_1) / log2(n_2 / n_1). Both points
    are scored on the same test pairs, so the CI is a paired percentile bootstrap over test pairs:
    each resample draws pairs i with replacement and recomputes the slope from
    d_i = mean_seeds(correct_2[i]) - mean_seeds(correct_1[i]). With >= 2 seeds run at both
    points, ``seed_sd`` is the sample sd of those seeds' own slopes.
    """
    if len(points) < 2:
        raise ValueError("the slope needs two curve points")
    (n1, c1), (n2, c2) = sorted(points, key=lambda p: p[0])[-2:]
    if n1 == n2:
        raise ValueError(f"two curve points with {n1} pairs")
    doublings = math.log2(n2 / n1)
    m = len(next(iter(c1.values())))
    if any(len(c) != m for c in [*c1.values(), *c2.values()]):
        raise ValueError("every curve point must be scored on the same test pairs")
    d = [sum(c[i] for c in c2.values()) / len(c2) - sum(c[i] for c in c1.values()) / len(c1) for i in range(m)]
    slope = sum(d) / m / doublings
    rng = random.Random(seed)
    boots = sorted(sum(d[rng.randrange(m)] for _ in range(m)) / m / doublings for _ in range(n_boot))
    lo, hi = percentile_95(boots)
    acc1, acc2 = (sum(map(sum, c.values())) / (len(c) * m) for c in (c1, c2))
    common = sorted(set(c1) & set(c2))
    out = {"n1": n1, "n2": n2, "acc1": acc1, "acc2": acc2, "doublings": doublings, "slope": slope,
           "ci95": [lo, hi], "seeds": len(common), "seed_sd": None}
    if len(common) >= 2:
        per_seed = [(sum(c2[k]) - sum(c1[k])) / m / doublings for k in common]
        mean = sum(per_seed) / len(per_seed)
        out["seed_sd"] = math.sqrt(sum((x - mean) ** 2 for x in per_seed) / (len(per_seed) - 1))
    return out


def log_linear_fit(points: list[tuple[int, dict[int, list[bool]]]], n_boot: int = 2000, seed: int = 0) -> dict:
    """Least-squares line of test accuracy (mean over seeds) on log2(pairs) through EVERY curve
    point: the last doubling alone (``slope_per_doubling``) is noisy at ~300 test pairs. The CI is
    a paired percentile bootstrap over the test pairs all points share (resample, recompute every
    point, refit). Returns the slope per doubling, its CI, the intercept (log2 = 0) and the
    residual sd of the points about the line."""
    if len(points) < 2:
        raise ValueError("the fit needs two curve points")
    pts = sorted(points, key=lambda p: p[0])
    if len({n for n, _ in pts}) != len(pts):
        raise ValueError("two curve points with the same number of pairs")
    m = len(next(iter(pts[0][1].values())))
    if any(len(c) != m for _, cs in pts for c in cs.values()):
        raise ValueError("every curve point must be scored on the same test pairs")
    x = [math.log2(n) for n, _ in pts]
    per_pair = [[sum(c[i] for c in cs.values()) / len(cs) for _, cs in pts] for i in range(m)]  # (m, J)
    x_mean = sum(x) / len(x)
    sxx = sum((xi - x_mean) ** 2 for xi in x)

    def fit(indices) -> tuple[float, float, list[float]]:
        acc = [sum(per_pair[i][j] for i in indices) / len(indices) for j in range(len(x))]
        a_mean = sum(acc) / len(acc)
        slope = sum((xi - x_mean) * (a - a_mean) for xi, a in zip(x, acc)) / sxx
        return slope, a_mean - slope * x_mean, acc

    slope, intercept, acc = fit(range(m))
    rng = random.Random(seed)
    boots = sorted(fit([rng.randrange(m) for _ in range(m)])[0] for _ in range(n_boot))
    lo, hi = percentile_95(boots)
    resid = [a - (intercept + slope * xi) for xi, a in zip(x, acc)]
    resid_sd = math.sqrt(sum(r * r for r in resid) / (len(x) - 2)) if len(x) > 2 else None
    return {"pairs": [n for n, _ in pts], "accuracy": acc, "slope": slope, "ci95": [lo, hi],
            "intercept": intercept, "residual_sd": resid_sd, "n_max": pts[-1][0]}


def fit_reading(f: dict, target: float) -> str:
    """One line on the whole-curve fit: the slope with its CI, and the pairs the line needs for ``target``."""
    pts = lambda x: f"{100 * x:+.1f}"  # noqa: E731
    sd = f", residual sd {100 * f['residual_sd']:.1f} points" if f["residual_sd"] is not None else ""
    line = (f"Whole-curve fit over {len(f['pairs'])} points ({f['pairs'][0]:,} to {f['n_max']:,} pairs): "
            f"{pts(f['slope'])} points per doubling (95% CI {pts(f['ci95'][0])} to {pts(f['ci95'][1])}{sd}): ")
    lo, hi = f["ci95"]
    line += "rising, more pairs help" if lo > 0 else ("falling" if hi < 0 else "flat within the noise")
    if f["slope"] <= 0:
        return line + "."
    # Every least-squares line passes through the points' centroid; the CI's slope pivots there.
    x_mean = sum(math.log2(n) for n in f["pairs"]) / len(f["pairs"])
    a_mean = f["intercept"] + f["slope"] * x_mean
    needed = lambda slope: 2 ** (x_mean + (target - a_mean) / slope)  # noqa: E731
    at = f["intercept"] + f["slope"] * math.log2(f["n_max"])
    if at >= target:
        return line + f"; the line is at or above {target:.2f} at {f['n_max']:,} pairs."
    line += f"; the line reaches {target:.2f} at about {needed(f['slope']):,.0f} pairs"
    if hi > f["slope"]:
        line += f" ({needed(hi):,.0f} at the CI's upper slope)"
    return line + "."


def paired_difference(a: list[bool], b: list[bool], n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Accuracy of a minus accuracy of b on the same test pairs, with a paired percentile
    bootstrap 95% CI (pairs resampled together): the two models' errors are correlated, so this
    is much tighter than comparing their separate CIs."""
    if len(a) != len(b) or not a:
        raise ValueError(f"paired difference of {len(a)} and {len(b)} outcomes")
    d = [float(x) - float(y) for x, y in zip(a, b)]
    m, rng = len(d), random.Random(seed)
    boots = sorted(sum(d[rng.randrange(m)] for _ in range(m)) / m for _ in range(n_boot))
    return (sum(d) / m, *percentile_95(boots))


def curve_reading(s: dict, target: float) -> str:
    """One line: the slope with its CI, what the CI allows, and what the slope implies for ``target``."""
    pts = lambda x: f"{100 * x:+.1f}"  # noqa: E731
    seeds = f", sd over {s['seeds']} seeds {100 * s['seed_sd']:.1f}" if s["seed_sd"] is not None else ""
    line = (f"Curve: test accuracy {s['acc1']:.3f} at {s['n1']:,} pairs -> {s['acc2']:.3f} at {s['n2']:,}, "
            f"{pts(s['slope'])} points per doubling of the pairs (95% CI {pts(s['ci95'][0])} to "
            f"{pts(s['ci95'][1])}, paired bootstrap over test pairs{seeds}): ")
    lo, hi = s["ci95"]
    if lo > 0:
        line += "still rising, more pairs help"
    elif hi < 0:
        line += "falling: the larger set is worse"
    else:
        line += "flat within the noise, no evidence that more pairs help"
    gap = target - s["acc2"]
    if gap <= 0:
        return line + f"; already at or above {target:.2f}."
    if s["slope"] > 0:
        k = gap / s["slope"]
        line += (f"; at this slope {target:.2f} needs {k:.1f} more doublings, about {s['n2'] * 2 ** k:,.0f} pairs")
        if hi > 0:
            line += f" (at the CI's upper slope {gap / hi:.1f} doublings, {s['n2'] * 2 ** (gap / hi):,.0f} pairs)"
        return line + "."
    return line + f"; at this slope more pairs of this kind do not reach {target:.2f}."


# --------------------------------------------------------------------------- tables
def settings_change(row: dict) -> str:
    o = row.get("overrides") or {}
    return ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in o.items()) or "recipe"


def params(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 10**6 else f"{n:,}"


def markdown_table(rows: list[dict], n_boot: int = 2000) -> str:
    """One row per run; an ablation also gets its test accuracy minus the recipe's (curve-all,
    seed 0) on the same test pairs with the paired CI (``paired_difference``)."""
    head = ("| run | seed | pairs | setting changed | steps | trainable params | set-up min | train min | "
            "eval min | test accuracy (95% CI) | minus recipe's (paired 95% CI) | train-slice accuracy (pairs) |")
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    recipe = next((r for r in rows if (r["name"], r["seed"]) == ("curve-all", 0)), None)
    for r in rows:
        t, tr = r["test"], r["train_slice"]
        versus = ""
        if recipe is not None and not r["name"].startswith("curve-"):
            diff, lo, hi = paired_difference([c == "1" for c in r["test_correct"]],
                                             [c == "1" for c in recipe["test_correct"]], n_boot)
            versus = f"{100 * diff:+.1f} points ({100 * lo:+.1f} to {100 * hi:+.1f})"
        lines.append(
            f"| {r['name']} | {r['seed']} | {r['n_pairs']:,} | {settings_change(r)} | {r['steps']} | "
            f"{params(r['trainable_params'])} | {r['setup_minutes']:.1f} | {r['train_minutes']:.1f} | "
            f"{r['eval_minutes']:.1f} | {t['accuracy']:.3f} ({t['accuracy_ci95'][0]:.3f}-{t['accuracy_ci95'][1]:.3f}) | "
            f"{versus} | {tr['accuracy']:.3f} ({tr['n_pairs']}) |")
    curve_by_n: dict[int, list[float]] = {}
    for r in rows:
        if r["name"].startswith("curve-"):
            curve_by_n.setdefault(r["n_pairs"], []).append(r["test"]["accuracy"])
    for n, accs in sorted(curve_by_n.items()):
        if len(accs) > 1:
            mean = sum(accs) / len(accs)
            sd = math.sqrt(sum((a - mean) ** 2 for a in accs) / (len(accs) - 1))
            lines.append(f"| curve, mean of {len(accs)} seeds | | {n:,} | | | | | | | {mean:.3f} (sd {sd:.3f}) | | |")
    return "\n".join(lines)


def run_order(rows: list[dict], runs: list[Run]) -> list[dict]:
    """Recorded rows in table order: curve by pairs then seed, then ablations, then any others."""
    rank = {name: i for i, name in enumerate(ABLATIONS)}

    def key(r):
        if r["name"].startswith("curve-"):
            return (0, r["n_pairs"], r["seed"], "")
        return (1, rank.get(r["name"], len(rank)), r["seed"], r["name"])

    return sorted(rows, key=key)


# --------------------------------------------------------------------------- training and scoring
def base_config(args):
    """The recipe as a RewardTrainConfig (its data, eval and output keys are not used here)."""
    from rlhfkit.commands.recipe import merge
    from rlhfkit.data.recipe import read_recipe
    from rlhfkit.trainers.reward_model import RewardTrainConfig

    recipe = read_recipe(Path(args.recipe))
    cfg = merge(RewardTrainConfig, recipe, {}, Path(args.recipe), "reward")
    if cfg.loss != "bt":
        raise SystemExit(f"{args.recipe}: loss {cfg.loss!r}; HH holds pairs only, this benchmark trains bt")
    cfg.data, cfg.eval_data, cfg.limit = "", "", 0
    cfg.save_every, cfg.eval_every, cfg.resume, cfg.report_to = 0, 0, False, "none"
    cfg.progress = args.progress
    return cfg


def run_config(base, run: Run, out: Path):
    from dataclasses import replace

    return replace(base, **run.overrides, seed=run.seed, out=str(out))


def settings_of(cfg, run: Run, args, n_total: int) -> dict:
    from dataclasses import asdict

    values = asdict(cfg)
    return {**{k: values[k] for k in SETTING_KEYS}, "train_file": str(args.train), "train_pairs_in_file": n_total,
            "test_file": str(args.test), "train_slice": args.train_slice, "tiny": args.tiny}


def score(model, pairs: list, cfg, n_boot: int) -> tuple[dict, list[bool]]:
    """The library's evaluation of ``pairs`` at the run's max_length: summary and per-pair correctness."""
    from rlhfkit.eval.reward_eval import summarize_scores
    from rlhfkit.models.reward_model import score_pairs
    from rlhfkit.packing import tokenize_reward_pairs

    tokenized = tokenize_reward_pairs(model.tokenizer, pairs, cfg.max_length)
    chosen, rejected = score_pairs(model, tokenized, cfg.eval_batch_size, cfg.packing, cfg.dtype)  # (n, H) each
    summary = summarize_scores(chosen, rejected, tokenized, n_boot=n_boot)
    correct = ((chosen.mean(1) - rejected.mean(1)) > 0).tolist()
    keep = ("n_pairs", "accuracy", "accuracy_ci95", "ties", "ece", "mean_margin", "longer_answer_baseline")
    return {k: summary[k] for k in keep}, correct


def train_and_score(run: Run, cfg, train_pairs: list, test_pairs: list, args) -> dict:
    import shutil

    from rlhfkit.trainers.reward_model import RewardModelTrainer

    run_dir = Path(cfg.out)
    shutil.rmtree(run_dir, ignore_errors=True)  # a killed attempt's metrics would be appended to
    chosen = subset_indices(len(train_pairs), run.n_pairs, run.seed)
    subset = [train_pairs[i] for i in chosen]
    t0 = time.perf_counter()
    trainer = RewardModelTrainer(cfg, train_pairs=subset).setup()
    t1 = time.perf_counter()
    trainer.train()
    t2 = time.perf_counter()
    model = trainer.model
    test, correct = score(model, test_pairs, trainer.cfg, args.n_boot)
    train_slice, _ = score(model, subset[: args.train_slice], trainer.cfg, args.n_boot)
    t3 = time.perf_counter()
    return {"pairs_used": len(trainer.train_tok), "steps": trainer.step,
            "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "setup_minutes": (t1 - t0) / 60, "train_minutes": (t2 - t1) / 60, "eval_minutes": (t3 - t2) / 60,
            "final_loss": trainer.history[-1].get("loss") if trainer.history else None,
            "test": test, "train_slice": train_slice, "test_correct": "".join("1" if c else "0" for c in correct)}


def load_data(args) -> tuple[list, list]:
    from rlhfkit.data import load_pairs

    train, test = load_pairs(args.train), load_pairs(args.test)
    if args.tiny:
        train, test = train[:TINY_TRAIN_PAIRS], test[:TINY_TEST_PAIRS]
    if not train or not test:
        raise SystemExit(f"{args.train if not train else args.test}: no pairs")
    return train, test


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    import torch

    from rlhfkit.trainers.loop import steps_for

    out = Path(args.out)
    results_path = out / "results.jsonl"
    train_pairs, test_pairs = load_data(args)
    base = base_config(args)
    if args.tiny:
        from rlhfkit.models import save_tiny

        tiny_dir = out / "tiny-model"
        if not (tiny_dir / "config.json").exists():
            save_tiny(tiny_dir, layers=2, hidden=32)
        base.model = str(tiny_dir)
    runs = plan(args, len(train_pairs))
    rows = read_results(results_path)

    print(f"base: {args.recipe} ({base.model}, max_length {base.max_length}, batch {base.batch_size}, lr {base.lr:g}, "
          f"{base.epochs:g} epoch, warm-up {base.warmup_ratio:g}, {base.lr_schedule}, {base.dtype}, packing "
          f"{base.packing}, freeze_layers {base.freeze_layers}); {len(train_pairs)} training pairs ({args.train}), "
          f"{len(test_pairs)} test pairs ({args.test}); torch threads {torch.get_num_threads()}")
    print("Plackett-Luce vs Bradley-Terry: not run, HH holds pairs only (no rankings to train PL on).")
    todo, expected = [], 0.0
    print(f"{'run':<12}{'seed':>5}{'pairs':>7}{'steps':>7}{'est. min':>10}  status")
    for run in runs:
        cfg = run_config(base, run, out / "runs" / f"{run.name}-seed{run.seed}")
        settings = settings_of(cfg, run, args, len(train_pairs))
        done = recorded(rows, run, settings, results_path)
        steps = steps_for(run.n_pairs, cfg)[1]
        minutes = estimate_minutes(run.n_pairs, cfg.epochs, cfg.max_length, cfg.freeze_layers, cfg.lora_r > 0,
                                   len(test_pairs) + min(args.train_slice, run.n_pairs))
        print(f"{run.name:<12}{run.seed:>5}{run.n_pairs:>7}{steps:>7}{'-' if args.tiny else f'{minutes:.1f}':>10}  "
              f"{'done, skipped' if done else 'to run'}", flush=True)
        if not done:
            todo.append((run, cfg, settings))
            expected += minutes
    if args.tiny:
        print(f"{len(todo)} runs to do; --tiny runs take seconds", flush=True)
    else:
        print(f"expected: {expected:.1f} min for {len(todo)} runs (scaled from the recipe's 8.6 min for 1,593 "
              "pairs on a quiet machine; estimate_minutes)", flush=True)
    if args.dry_run:
        return rows

    for run, cfg, settings in todo:
        print(f"{run.name} seed {run.seed}: training on {run.n_pairs} pairs ...", flush=True)
        result = train_and_score(run, cfg, train_pairs, test_pairs, args)
        row = {"name": run.name, "seed": run.seed, "n_pairs": run.n_pairs, "overrides": run.overrides,
               "settings": settings, **result, "finished": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
        append_result(results_path, row)
        rows.append(row)
        t = row["test"]
        print(f"{run.name} seed {run.seed}: test accuracy {t['accuracy']:.3f} ({t['accuracy_ci95'][0]:.3f}-"
              f"{t['accuracy_ci95'][1]:.3f}), train slice {row['train_slice']['accuracy']:.3f}, "
              f"{row['steps']} steps, {row['train_minutes']:.1f} + {row['eval_minutes']:.1f} min", flush=True)

    print(f"\n{markdown_table(run_order(rows, runs), args.n_boot)}\n")
    print("PL vs BT: not applicable, HH holds pairs only.")
    curve: dict[int, dict[int, list[bool]]] = {}  # pairs -> {seed: test correctness}
    for r in rows:
        if r["name"].startswith("curve-"):
            curve.setdefault(r["n_pairs"], {})[r["seed"]] = [c == "1" for c in r["test_correct"]]
    if len(curve) >= 2:
        print(curve_reading(slope_per_doubling(sorted(curve.items()), n_boot=args.n_boot), args.target))
        print(fit_reading(log_linear_fit(sorted(curve.items()), n_boot=args.n_boot), args.target))
    else:
        print("Curve: fewer than two curve points recorded, no slope yet.")
    return rows


if __name__ == "__main__":
    main()
