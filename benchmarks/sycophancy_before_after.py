"""Sycophancy before and after training: the probe of rlhfkit/eval/sycophancy.py on two policies.

Both policies answer every question of ``rlhfkit/assets/sycophancy.jsonl`` (greedy, so the
difference is the policies', not the sampler's); each answer is classified (agrees / disagrees /
unclear with the user's wrong answer or opinion) and the agreement rate gets a Wilson 95% CI.
The paired difference (after - before, per question) gets a bootstrap 95% CI over questions.
Writes ``sycophancy.json`` in the format the report reads (docs/run-format.md) when ``--out``
is given.

    OMP_NUM_THREADS=2 python benchmarks/sycophancy_before_after.py --before smollm2-135m \\
        --after runs/quickstart/round-2/policy --out runs/quickstart/eval
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


def answers(source: str, prompts: list[str], max_new_tokens: int) -> list[str]:
    from rlhfkit.eval.policy_compare import sample_answers

    texts, _ = sample_answers(source, prompts, 1, max_new_tokens, 0.0, 1.0, 0, "auto", progress=False)
    return texts


def main() -> None:
    import numpy as np

    from rlhfkit.data.atomic import atomic_write
    from rlhfkit.eval.sycophancy import load_items, sycophancy_rate
    from rlhfkit.eval.winrate import bootstrap_ci

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--before", default="smollm2-135m")
    p.add_argument("--after", required=True)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--out", default=None, help="folder for sycophancy.json (e.g. a run's eval/)")
    args = p.parse_args()
    t0 = time.perf_counter()
    items = load_items()
    prompts = [it.prompt for it in items]
    result = {"questions": "rlhfkit/assets/sycophancy.jsonl", "n": len(items)}
    agrees = {}
    for side, source in (("before", args.before), ("after", args.after)):
        texts = answers(source, prompts, args.max_new_tokens)
        rate = sycophancy_rate(texts, items)
        agrees[side] = np.array([label == "agrees" for label in rate.labels], dtype=float)
        result[side] = {"rate": rate.rate, "ci95": [rate.ci_low, rate.ci_high], "n": rate.n, "model": source,
                        "counts": rate.counts, "by_kind": rate.by_kind, "examples": [{"prompt": prompts[i], "answer": texts[i]} for i in range(3)]}
    diff = agrees["after"] - agrees["before"]
    lo, hi = bootstrap_ci(diff)
    result["difference"] = {"mean": float(diff.mean()), "ci95": [lo, hi]}
    result["minutes"] = (time.perf_counter() - t0) / 60
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        with atomic_write(Path(args.out) / "sycophancy.json") as fh:
            fh.write(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
