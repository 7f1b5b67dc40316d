"""rlhfkit DPO vs TRL's DPOTrainer, side by side in one process, on the same batches.

SmolLM2-135M-Instruct, HH-harmless train pairs, batch 4, max length 256, beta 0.1, AdamW with
the same learning rate and gradient clipping, constant schedule; fp32 then bf16 autocast.
Both trainers see the same batches in the same order (our length-grouped order; TRL gets a
dataset in that order and a sequential sampler) and start from the same weights (for bf16,
both snapped to the bf16 grid, see rlhfkit.models.numerics.snap_to_bf16_grid), so their loss
curves must agree up to float noise.

TRL recomputes the reference log-probs every step (its default); ours computes them once for
the whole data set before training. We report our s/step both alone and with that one-off
pass amortised over one epoch of the data.

    flock /tmp/rlhfkit-heavy.lock env OMP_NUM_THREADS=2 HF_HUB_OFFLINE=1 python benchmarks/dpo.py
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import torch

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "hh-harmless" / "train.jsonl"


def matmul_rate(dtype: torch.dtype, n: int = 2048, budget_s: float = 2.0) -> float:
    """GFLOP/s of an n x n x n matmul; probes at n=256 first, so a CPU whose bf16 matmul falls
    back to a scalar kernel (~1 GFLOP/s) does not spend minutes on the big one."""
    for size in (256, n):
        a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
        a @ b
        reps, t0 = 0, time.perf_counter()
        while reps < 3 or time.perf_counter() - t0 < budget_s / 4:
            a @ b
            reps += 1
        rate = 2 * size**3 * reps / (time.perf_counter() - t0) / 1e9
        if 2 * n**3 / (rate * 1e9) > budget_s:  # the big one would take too long: report the probe
            return rate
    return rate


def param_counts(model) -> tuple[int, int]:
    head = model.get_output_embeddings().weight.numel()
    body = sum(p.numel() for n, p in model.named_parameters() if "embed_tokens" not in n and "lm_head" not in n)
    return body, head


def run_ours(model, tok, pairs, args, dtype: str, steps: int, shared_prompt: bool = True, cache: str | None = None):
    from rlhfkit.trainers.dpo import DPOConfig, DPOTrainer
    from rlhfkit.packing import collate_pairs

    cfg = DPOConfig(beta=args.beta, lr=args.lr, batch_size=args.batch, max_length=args.max_length, dtype=dtype,
                    lr_schedule="constant", max_grad_norm=1.0, max_steps=steps, seed=args.seed,
                    packing=shared_prompt)
    # ``cache``: a folder whose reference_logps.pt a second run reuses (same pairs, same weights)
    trainer = DPOTrainer(model, tok, cfg, out_dir=cache, show_progress=False)
    t0 = time.perf_counter()
    trainer.setup(pairs)
    ref_s = time.perf_counter() - t0
    hist = trainer.train()
    body, head = param_counts(model)
    flops = []
    from rlhfkit.trainers.ordering import length_grouped_batches

    order = length_grouped_batches([e.packed_len for e in trainer.examples], args.batch, args.seed, 0)
    for idx in order[:steps]:
        b = collate_pairs([trainer.examples[i] for i in idx], tok.pad_token_id)
        flops.append(6 * body * b.num_tokens + 6 * head * len(b.target_ids))  # executed fwd+bwd
    return trainer, hist, ref_s, flops, order


def run_trl(model, ref_model, tok, pairs, order_pairs, args, dtype: str, steps: int):
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import DPOConfig, DPOTrainer

    rows = [pairs[i] for i in order_pairs]
    data = Dataset.from_list([{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in rows])
    times, shapes = [], []

    class Timer(TrainerCallback):
        def on_step_begin(self, *a, **k):
            self.t = time.perf_counter()

        def on_step_end(self, *a, **k):
            times.append(time.perf_counter() - self.t)

    out = tempfile.mkdtemp(prefix="trl-bench-")
    cfg = DPOConfig(output_dir=out, per_device_train_batch_size=args.batch, max_length=args.max_length,
                    beta=args.beta, learning_rate=args.lr, lr_scheduler_type="constant", max_grad_norm=1.0,
                    max_steps=steps, logging_steps=1, report_to=[], save_strategy="no", use_cpu=True,
                    bf16=dtype == "bf16", seed=args.seed, train_sampling_strategy="sequential",
                    dataloader_num_workers=0, warmup_steps=0, weight_decay=0.0, disable_tqdm=True,
                    # TRL 1.x turns activation checkpointing on by default (memory for speed);
                    # ours does not checkpoint, so neither does the peer here
                    gradient_checkpointing=False)
    trainer = DPOTrainer(model=model, ref_model=ref_model, args=cfg, train_dataset=data, processing_class=tok,
                         callbacks=[Timer()])
    orig = trainer._compute_loss

    def counting(model_, inputs, return_outputs):
        shapes.append(tuple(inputs["input_ids"].shape))
        return orig(model_, inputs, return_outputs)

    trainer._compute_loss = counting
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return times, losses, shapes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=64)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument("--lr", type=float, default=5e-6)
    ap.add_argument("--steps", type=int, default=6, help="steps per run; the first is warm-up")
    ap.add_argument("--dtypes", default="fp32,bf16")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default=str(DATA))
    args = ap.parse_args()

    from transformers import AutoModelForCausalLM

    from rlhfkit.data import load_pairs
    from rlhfkit.models import load_tokenizer, resolve_model_dir
    from rlhfkit.models.numerics import snap_to_bf16_grid

    torch.manual_seed(args.seed)
    folder = resolve_model_dir("smollm2-135m")
    tok = load_tokenizer(folder)
    pairs = load_pairs(args.data)[: args.pairs]
    print(f"threads={torch.get_num_threads()} pairs={len(pairs)} batch={args.batch} max_length={args.max_length} "
          f"beta={args.beta} lr={args.lr} steps={args.steps} (first is warm-up)")
    bf16_peak, fp32_peak = matmul_rate(torch.bfloat16), matmul_rate(torch.float32)
    print(f"matmul measured now: bf16 {bf16_peak:.1f} GFLOP/s, fp32 {fp32_peak:.0f} GFLOP/s")
    base = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    body, head = param_counts(base)
    for dtype in args.dtypes.split(","):
        if dtype == "bf16" and (bf16_peak < 0.5 * fp32_peak or bf16_peak < 10):
            print(f"\n== bf16 == skipped: this CPU has no native bf16 matmul ({bf16_peak:.1f} GFLOP/s bf16 vs "
                  f"{fp32_peak:.0f} fp32; torch falls back to a scalar kernel), so bf16 autocast would be far slower "
                  "than fp32 for both trainers. Rerun on a CPU with AVX512-bf16/AMX.")
            continue
        start = copy.deepcopy(base)
        if dtype == "bf16":
            snap_to_bf16_grid(start)  # same starting weights for both trainers
        ours_model = copy.deepcopy(start)
        cache = tempfile.mkdtemp(prefix=f"rlhfkit-bench-{dtype}-")
        trainer, hist, ref_s, flops, order = run_ours(ours_model, tok, pairs, args, dtype, args.steps, cache=cache)
        # TRL gets the same pairs, in our batch order (indices refer to the tokenised examples)
        order_pairs = [trainer.examples[i].index for b in order for i in b]
        trl_times, trl_losses, shapes = run_trl(copy.deepcopy(start), copy.deepcopy(start).eval(), tok, pairs,
                                                order_pairs, args, dtype, args.steps)
        # Noise floor: the same math in our plain (unshared, padded) layout. AdamW's first steps
        # are ~sign(grad) * lr, so float-rounding differences in near-zero gradients become full
        # lr-sized updates; the spread between our two layouts shows how far curves drift from that.
        plain_hist = run_ours(copy.deepcopy(start), tok, pairs, args, dtype, args.steps, shared_prompt=False,
                              cache=cache)[1]
        ours_t = [h["s_per_step"] for h in hist][1:]
        ours_s, trl_s = sum(ours_t) / len(ours_t), sum(trl_times[1:]) / len(trl_times[1:])
        steps_per_epoch = len(order)
        amortised = ours_s + ref_s / steps_per_epoch
        ours_gflops = sum(flops[1:]) / sum(ours_t) / 1e9
        trl_exec = [8 * (body + head) * r * c for r, c in shapes[1 : len(trl_times)]]  # policy fwd+bwd + ref fwd
        trl_gflops = sum(trl_exec) / sum(trl_times[1 : len(trl_exec) + 1]) / 1e9
        print(f"\n== {dtype} ==")
        print(f"ours: {ours_s:.2f} s/step; one-off reference pass over {len(trainer.examples)} pairs {ref_s:.1f} s "
              f"-> {amortised:.2f} s/step amortised over an epoch ({steps_per_epoch} steps)")
        print(f"TRL : {trl_s:.2f} s/step (reference recomputed every step)")
        print(f"ratio TRL/ours: {trl_s / ours_s:.2f}x per step, {trl_s / amortised:.2f}x with our reference pass amortised")
        fp32_peak = max(fp32_peak, matmul_rate(torch.float32))  # again, in case the first probe was contended
        print(f"achieved: ours {ours_gflops:.0f} GFLOP/s, TRL {trl_gflops:.0f} GFLOP/s (executed matmul FLOPs); "
              f"matmul peak measured in this run: bf16 {bf16_peak:.1f}, fp32 {fp32_peak:.0f}")
        print("step  loss(ours)  loss(TRL)  loss(ours, plain layout: noise floor)")
        for i, (a, b, c) in enumerate(zip([h["loss"] for h in hist], trl_losses, [h["loss"] for h in plain_hist]), 1):
            print(f"{i:>4}  {a:.6f}    {b:.6f}   {c:.6f}")


if __name__ == "__main__":
    main()
