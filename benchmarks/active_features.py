"""Frozen-backbone reward features for benchmarks/active_selection.py, computed once and cached.

A reward model's score is ``head(h)`` with ``h`` the backbone's hidden state at the answer's last
token (``RewardModel.rewards``). With the backbone frozen, ``h`` never changes, so it is computed
once per (prompt, answer) by the reward model's own read-out with the head swapped for the
identity: the same tokenisation (``tokenize_reward_pairs``), packing ([prompt | chosen |
rejected] as one row) and last-token index as training and the server's ranker use.

    flock /tmp/rlhfkit-heavy.lock nice -n 10 python benchmarks/active_features.py --out runs/active/features.pt
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

HH = "/work/shared/data/hh-harmless"


def feature_reader(model):
    """The reward model itself with its head replaced by the identity: ``pair_rewards`` then
    returns the (B, D) hidden states the head would read, not (B, H) rewards."""
    import torch

    net = model.net.get_base_model() if hasattr(model.net, "get_base_model") else model.net
    net.score = torch.nn.Identity()
    return model


def extract(model_name: str, pairs, max_length: int, batch_size: int = 16):
    """(chosen (N, D), rejected (N, D)) fp32 features of ``pairs`` in input order."""
    from rlhfkit.models.reward_model import RewardModel, score_pairs
    from rlhfkit.packing import tokenize_reward_pairs

    model = feature_reader(RewardModel.from_backbone(model_name, n_heads=1))
    tokenized = tokenize_reward_pairs(model.tokenizer, pairs, max_length)
    return score_pairs(model, tokenized, batch_size=batch_size)


def cache_key(model_name: str, paths: list[str], max_length: int) -> str:
    h = hashlib.sha256(json.dumps([model_name, max_length]).encode())
    for p in paths:
        h.update(Path(p).read_bytes())
    return h.hexdigest()[:16]


def load_or_extract(out: str | Path, model_name: str = "smollm2-135m", train: str = f"{HH}/train.jsonl",
                    test: str = f"{HH}/test.jsonl", max_length: int = 128) -> dict:
    """The cached features of ``out`` when its key matches, else extract and write them."""
    import torch

    from rlhfkit.data import load_pairs
    from rlhfkit.data.atomic import atomic_write

    out = Path(out)
    key = cache_key(model_name, [train, test], max_length)
    if out.exists():
        cached = torch.load(out, weights_only=False)
        if cached.get("key") == key:
            return cached
    pool_pairs, test_pairs = load_pairs(train), load_pairs(test)
    t0 = time.perf_counter()
    pc, pr = extract(model_name, pool_pairs, max_length)
    tc, tr = extract(model_name, test_pairs, max_length)
    data = {"key": key, "model": model_name, "max_length": max_length, "seconds": time.perf_counter() - t0,
            "pool": {"pairs": [p.model_dump() for p in pool_pairs], "chosen": pc, "rejected": pr},
            "test": {"pairs": [p.model_dump() for p in test_pairs], "chosen": tc, "rejected": tr}}
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out, "wb") as f:
        torch.save(data, f)
    return data


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="runs/active/features.pt")
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--limit", type=int, default=0, help="time the extraction on the first N pool pairs only")
    args = p.parse_args()
    if args.limit:
        from rlhfkit.data import load_pairs

        pairs = load_pairs(f"{HH}/train.jsonl")[: args.limit]
        t0 = time.perf_counter()
        c, _ = extract(args.model, pairs, args.max_length)
        print(f"{len(pairs)} pairs in {time.perf_counter() - t0:.1f} s; features {tuple(c.shape)}")
        return
    data = load_or_extract(args.out, args.model, max_length=args.max_length)
    print(f"features of {len(data['pool']['pairs'])} pool + {len(data['test']['pairs'])} test pairs "
          f"({data['seconds']:.0f} s to extract) in {args.out}")


if __name__ == "__main__":
    main()
