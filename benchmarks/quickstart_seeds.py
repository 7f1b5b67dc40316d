"""The quickstart loop (rlhfkit/assets/quickstart.yaml) for several seeds: is the gold win rate of
the final policy over the starting one a real improvement, not a lucky seed?

    OMP_NUM_THREADS=2 python benchmarks/quickstart_seeds.py --seeds 0 1 2

Prints, per seed, the minutes and the final round's gold win rate with its bootstrap 95% CI (and
the length-controlled one), then one JSON line with everything; runs go to runs/quickstart-seedN.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    from rlhfkit.trainers.rounds import Loop, read_loop_recipe

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--recipe", default="builtin:quickstart")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", default="runs")
    p.add_argument("--progress", action="store_true")
    args = p.parse_args()
    rows = []
    for seed in args.seeds:
        cfg = read_loop_recipe(args.recipe)
        cfg.seed, cfg.name, cfg.out, cfg.progress = seed, f"{cfg.name}-seed{seed}", args.out, args.progress
        t0 = time.perf_counter()
        summary = Loop(cfg).run()
        last = summary[f"round-{cfg.rounds}"]
        row = {"seed": seed, "minutes": (time.perf_counter() - t0) / 60, **{k: last[k] for k in (
            "win_rate", "ci95", "lc_win_rate", "lc_ci95", "n", "gold_mean", "reference_gold_mean", "mean_words",
            "reference_mean_words", "kl_per_sequence") if k in last}}
        rows.append(row)
        print(f"seed {seed}: {row['minutes']:.1f} min, gold win rate {row['win_rate']:.3f} "
              f"[{row['ci95'][0]:.3f}, {row['ci95'][1]:.3f}], length-controlled {row['lc_win_rate']:.3f}, "
              f"words {row['reference_mean_words']:.1f} -> {row['mean_words']:.1f}", flush=True)
    print(json.dumps({"recipe": args.recipe, "runs": rows}))


if __name__ == "__main__":
    main()
