"""How often does the default simulated pool agree with real people, when a reward model is its gold?

Issue 11, section 1 (b). The pool (``feedback.calibration.default_pool``: its temperature solved
for 68% expected agreement with its own gold scorer) gets a reward model trained on
``hh-harmless/train.jsonl`` as its gold and labels every pair of ``hh-harmless/test.jsonl``; the
labels are compared with the human labels of that file. The temperature is calibrated on train
pairs, never on test. Also printed, on the same test pairs: the reward model's own accuracy
against the humans (the best the pool could do without its noise) and the pool's agreement with
its gold.

    OMP_NUM_THREADS=2 python benchmarks/pool_hh_agreement.py --reward-model runs/rm-hh

Prints one JSON line; benchmarks/RESULTS.md records it with the command.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

HH = Path(__file__).resolve().parents[2] / "shared" / "data" / "hh-harmless"


def main() -> None:
    from rlhfkit.data import load_pairs
    from rlhfkit.eval.winrate import bootstrap_ci
    from rlhfkit.feedback.calibration import HUMAN_AGREEMENT, agreement_with_gold, agreement_with_pairs, default_pool
    from rlhfkit.feedback.simulate import prompt_as_text
    from rlhfkit.rewards.model_reward import ModelReward
    from rlhfkit.schema import PreferenceItem, Response

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--reward-model", required=True, help="a reward-model folder trained on hh-harmless/train.jsonl")
    p.add_argument("--calibration-pairs", type=int, default=300, help="train pairs the pool's temperature is solved on")
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    t0 = time.perf_counter()
    test = load_pairs(HH / "test.jsonl")
    calib = load_pairs(HH / "train.jsonl")[: args.calibration_pairs]
    rm = ModelReward.load(args.reward_model, max_length=args.max_length)

    # the pool sees prompts as text; score every (prompt, answer) once with the real prompt object
    scores: dict[tuple[str, str], float] = {}
    for pairs in (test, calib):
        prompts = [q.prompt for q in pairs for _ in (0, 1)]
        texts = [t for q in pairs for t in (q.chosen, q.rejected)]
        for prompt, text, s in zip(prompts, texts, rm(prompts, texts)):
            scores[(prompt_as_text(prompt), text)] = float(s)

    def gold(prompt: str, text: str) -> float:
        return scores[(prompt, text)]

    items = [PreferenceItem(prompt=q.prompt, responses=[Response(text=q.chosen), Response(text=q.rejected)])
             for q in calib]
    pool = default_pool(gold, items, seed=args.seed, gold_name=str(args.reward_model))
    with_humans = agreement_with_pairs(pool, test)
    test_items = [PreferenceItem(prompt=q.prompt, responses=[Response(text=q.chosen), Response(text=q.rejected)])
                  for q in test]
    with_gold = agreement_with_gold(default_pool(gold, items, seed=args.seed + 1, gold_name="rm"), test_items, gold)
    rm_correct = [float(gold(prompt_as_text(q.prompt), q.chosen) > gold(prompt_as_text(q.prompt), q.rejected))
                  for q in test]
    lo, hi = bootstrap_ci(rm_correct, seed=args.seed)
    print(json.dumps({
        "test_pairs": len(test), "calibration_pairs": len(calib), "target_agreement_with_gold": HUMAN_AGREEMENT,
        "pool_vs_humans": with_humans.agreement, "pool_vs_humans_ci95": [with_humans.ci_low, with_humans.ci_high],
        "pool_vs_gold_on_test": with_gold.agreement, "pool_vs_gold_ci95": [with_gold.ci_low, with_gold.ci_high],
        "reward_model_vs_humans": sum(rm_correct) / len(rm_correct), "reward_model_vs_humans_ci95": [lo, hi],
        "per_annotator_vs_humans": with_humans.per_annotator, "reward_model": args.reward_model,
        "minutes": (time.perf_counter() - t0) / 60}))


if __name__ == "__main__":
    main()
