"""Our reward-model trainer vs TRL's RewardTrainer, side by side in one process.

Same backbone (SmolLM2-135M), same HH train pairs (identical token ids: both get the pairs
tokenised and truncated by rlhfkit, TRL as pre-tokenised `chosen_ids`/`rejected_ids`), same
batch size, max length, learning rate (constant, no warm-up), AdamW defaults, grad clip 1.0,
steps and dtype. Both trained models are scored by the same evaluation code on the same test
pairs. Prints pairs/s of each, the ratio, and the test accuracy of each.

    OMP_NUM_THREADS=2 flock /tmp/rlhfkit-heavy.lock python benchmarks/reward_model.py

``--variants`` also runs our trainer without packing (the 2-row layout) to measure packing.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from rlhfkit.data import load_pairs  # noqa: E402
from rlhfkit.eval.reward_eval import summarize  # noqa: E402
from rlhfkit.models.reward_model import RewardModel, score_pairs  # noqa: E402
from rlhfkit.packing import tokenize_reward_pairs  # noqa: E402
from rlhfkit.trainers.reward_model import RewardModelTrainer, RewardTrainConfig  # noqa: E402

HH = "/work/shared/data/hh-harmless"


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--train", default=f"{HH}/train.jsonl")
    p.add_argument("--test", default=f"{HH}/test.jsonl")
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--lr", type=float, default=2e-5)
    p.add_argument("--scheduler", choices=["constant", "cosine"], default="constant",
                   help="no warm-up either way, so both trainers follow the same schedule exactly")
    p.add_argument("--freeze-layers", type=int, default=0,
                   help="freeze the embeddings and the first N decoder layers, in both trainers")
    p.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--eval-pairs", type=int, default=300, help="test pairs scored (300 = all of HH test)")
    p.add_argument("--variants", default="ours,ours-plain,trl", help="comma list of: ours, ours-plain, trl")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def run_ours(args, train_pairs, tmp: str, packing: bool) -> tuple[float, RewardModel]:
    cfg = RewardTrainConfig(model=args.model, out=f"{tmp}/ours-{packing}", max_length=args.max_length,
                            batch_size=args.batch_size, lr=args.lr, max_steps=args.steps, warmup_ratio=0.0,
                            lr_schedule=args.scheduler, freeze_layers=args.freeze_layers, dtype=args.dtype, packing=packing, seed=args.seed,
                            progress=False, log_every=10**9)
    trainer = RewardModelTrainer(cfg, train_pairs=train_pairs).setup()
    start = time.perf_counter()
    trainer.train()
    return time.perf_counter() - start, trainer.model


def run_trl(args, tokenized, tmp: str) -> tuple[float, RewardModel]:
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    model = RewardModel.from_backbone(args.model, n_heads=1, seed=args.seed)
    if args.freeze_layers:  # the same parameters our trainer freezes; Trainer optimises requires_grad only
        model.backbone.embed_tokens.requires_grad_(False)
        for layer in model.backbone.layers[: args.freeze_layers]:
            layer.requires_grad_(False)
    rows = [{"chosen_ids": t.prompt_ids + t.chosen_ids, "rejected_ids": t.prompt_ids + t.rejected_ids}
            for t in tokenized]
    targs = RewardConfig(output_dir=f"{tmp}/trl", per_device_train_batch_size=args.batch_size,
                         learning_rate=args.lr, max_steps=args.steps, lr_scheduler_type=args.scheduler,
                         warmup_steps=0, max_length=args.max_length, bf16=args.dtype == "bf16",
                         logging_steps=10**9, save_strategy="no", report_to=[], seed=args.seed,
                         use_cpu=True, dataloader_num_workers=0, disable_tqdm=True,
                         # TRL 1.x turns activation checkpointing on by default (memory for speed);
                         # ours does not checkpoint, so neither does the peer here
                         gradient_checkpointing=False)
    trainer = RewardTrainer(model=model.net, args=targs, train_dataset=Dataset.from_list(rows),
                            processing_class=model.tokenizer)
    start = time.perf_counter()
    trainer.train()
    return time.perf_counter() - start, model


def paired_difference(a: list[bool], b: list[bool], seed: int, n_boot: int = 4000) -> tuple[float, float, float]:
    """Accuracy of a minus accuracy of b on the same pairs, with a paired bootstrap 95% CI: the two
    models' errors are correlated, so this is far tighter than comparing two separate CIs."""
    g = torch.Generator().manual_seed(seed)
    d = torch.tensor([float(x) - float(y) for x, y in zip(a, b)])
    boots = d[torch.randint(len(d), (n_boot, len(d)), generator=g)].mean(dim=1)
    return d.mean().item(), boots.quantile(0.025).item(), boots.quantile(0.975).item()


def main() -> None:
    args = parse()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    pairs = load_pairs(args.train)[: args.steps * args.batch_size]
    test_pairs = load_pairs(args.test)[: args.eval_pairs]
    results, correct = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.variants.split(","):
            if name == "trl":
                tok = RewardModel.from_backbone(args.model).tokenizer
                seconds, model = run_trl(args, tokenize_reward_pairs(tok, pairs, args.max_length), tmp)
            else:
                seconds, model = run_ours(args, pairs, tmp, packing=name == "ours")
            test_tok = tokenize_reward_pairs(model.tokenizer, test_pairs, args.max_length)
            chosen, rejected = score_pairs(model, test_tok, batch_size=16, packed=True, dtype=args.dtype)
            margins = (chosen.mean(1) - rejected.mean(1)).tolist()
            summary = summarize(margins, [t.completion_chars[0] for t in test_tok], [t.completion_chars[1] for t in test_tok])
            summary["_correct"] = [m > 0 for m in margins]
            correct[name] = summary.pop("_correct")
            results[name] = {"seconds": round(seconds, 1), "pairs_per_s": round(len(pairs) / seconds, 3),
                             "test_accuracy": round(summary["accuracy"], 4),
                             "test_accuracy_ci95": [round(x, 4) for x in summary["accuracy_ci95"]]}
            print(name, json.dumps(results[name]), flush=True)
            del model
    print(f"setting: {args.model}, {len(pairs)} HH train pairs, {args.steps} steps x batch {args.batch_size}, "
          f"max_length {args.max_length}, lr {args.lr}, dtype {args.dtype}, {len(test_pairs)} test pairs, "
          f"torch threads {torch.get_num_threads()}")
    print(f"{'trainer':<12}{'seconds':>9}{'pairs/s':>9}{'test acc':>10}  95% CI")
    for name, r in results.items():
        lo, hi = r["test_accuracy_ci95"]
        print(f"{name:<12}{r['seconds']:>9}{r['pairs_per_s']:>9}{r['test_accuracy']:>10}  [{lo}, {hi}]")
    if "trl" in results:
        for name in results:
            if name != "trl":
                print(f"speed ratio {name} / trl: {results[name]['pairs_per_s'] / results['trl']['pairs_per_s']:.2f}x")
                diff, lo, hi = paired_difference(correct[name], correct["trl"], seed=args.seed)
                print(f"accuracy {name} - trl on the same test pairs: {diff:+.4f} (paired bootstrap 95% CI "
                      f"[{lo:+.4f}, {hi:+.4f}]; both right {sum(a and b for a, b in zip(correct[name], correct['trl']))}, "
                      f"only {name} {sum(a and not b for a, b in zip(correct[name], correct['trl']))}, "
                      f"only trl {sum(b and not a for a, b in zip(correct[name], correct['trl']))})")


if __name__ == "__main__":
    main()
