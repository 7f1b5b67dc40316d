"""Does a one-backbone ensemble's disagreement predict its errors, with and without bootstrap?

The simulated-ranking task of ``reward_pl_vs_bt.py`` (known gold, held-out pairs scored against
it). Per seed, two BT reward models with ``--heads`` heads on one tiny backbone, the same data,
initialisation and steps: heads that differ only by initialisation, and heads trained on their
own bootstrap resamples (``--bootstrap``). For each, the evaluation's ``ensemble`` block: ECE
(10 bins) of the ensemble mean, and the accuracy on the least- vs most-disputed quartile of the
held-out pairs, by the std of member margins and by std / |mean margin|. Prints one JSON line per run and a summary line.

    flock /tmp/rlhfkit-heavy.lock nice -n 10 python benchmarks/reward_ensemble_bootstrap.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def build_parser() -> argparse.ArgumentParser:
    from reward_pl_vs_bt import build_parser as task_parser

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], parents=[task_parser()], add_help=False,
                                conflict_handler="resolve")
    p.add_argument("--heads", type=int, default=5)
    p.add_argument("--epochs", type=float, default=5.0)
    return p


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    import torch

    from reward_pl_vs_bt import make_data
    from rlhfkit.data.reward_labels import reward_examples
    from rlhfkit.models import save_tiny
    from rlhfkit.trainers.reward_model import RewardModelTrainer, RewardTrainConfig

    torch.set_num_threads(1)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            model_dir = str(save_tiny(f"{tmp}/tiny-{seed}", layers=args.layers, hidden=args.hidden, seed=seed))
            items, held_out = make_data(args, seed)
            pairs = reward_examples(items, "bt")
            for bootstrap in (False, True):
                cfg = RewardTrainConfig(model=model_dir, out="", loss="bt", n_heads=args.heads, bootstrap=bootstrap,
                                        max_length=64, batch_size=args.batch_size, lr=args.lr, epochs=args.epochs,
                                        warmup_ratio=0.0, lr_schedule="constant", seed=seed, progress=False,
                                        log_every=10**9, resume=False)
                trainer = RewardModelTrainer(cfg, train_pairs=pairs, eval_pairs=held_out).setup()
                trainer.train()
                s = trainer.evaluate(n_boot=200)
                e = s["ensemble"]
                run = {"seed": seed, "bootstrap": bootstrap, "accuracy": s["accuracy"], "ece": e["ece"],
                       "least_disputed": e["least_disputed"]["accuracy"], "most_disputed": e["most_disputed"]["accuracy"],
                       "accuracy_gap": e["accuracy_gap"], "mean_disagreement": s["mean_disagreement"],
                       "relative_least": e["by_relative_disagreement"]["least_disputed"]["accuracy"],
                       "relative_most": e["by_relative_disagreement"]["most_disputed"]["accuracy"],
                       "member_accuracy": e["member_accuracy"]}
                print(json.dumps(run), flush=True)
                runs.append(run)
    summary: dict = {"settings": vars(args)}
    for bootstrap in (False, True):
        rs = [r for r in runs if r["bootstrap"] == bootstrap]
        summary["bootstrap" if bootstrap else "init_only"] = {
            k: round(statistics.mean(r[k] for r in rs), 4)
            for k in ("accuracy", "ece", "least_disputed", "most_disputed", "accuracy_gap", "mean_disagreement",
                      "relative_least", "relative_most")}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
