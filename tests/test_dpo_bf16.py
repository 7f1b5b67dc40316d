"""bf16 trust: weights sitting exactly on bf16 rounding midpoints (as ~8% of GGUF-dequantised
SmolLM2 weights do) flip under bf16 autocast at the first optimiser step and fake a large
policy/reference gap. Snapping the weights to the bf16 grid before the reference pass fixes it:
bf16 margins then track the fp32 ones."""

import torch

from rlhfkit.models import tiny_causal_lm
from rlhfkit.models.numerics import snap_to_bf16_grid
from rlhfkit.trainers.dpo import DPOConfig, DPOTrainer

torch.set_num_threads(1)


def put_on_bf16_midpoints(model) -> float:
    """Move every matrix weight to the midpoint between its bf16 rounding and the next bf16 value
    away from zero; returns the fraction of all parameters now on a midpoint."""
    moved = total = 0
    with torch.no_grad():
        for p in model.parameters():
            total += p.numel()
            if p.dim() < 2:
                continue
            low = p.to(torch.bfloat16)
            high = (low.view(torch.int16) + 1).view(torch.bfloat16)  # next bf16 value, same sign
            p.copy_((low.float() + high.float()) / 2)  # exact in fp32
            moved += p.numel()
    return moved / total


def pairs():
    from rlhfkit.schema import PreferencePair

    return [PreferencePair(prompt=f"Question {i}: say yes or no.", chosen=" yes" * (1 + i % 3), rejected=" no!")
            for i in range(8)]


def margins_after(dtype, snap, steps=3):
    model, tok = tiny_causal_lm(seed=7, hidden=64, layers=2)
    frac = put_on_bf16_midpoints(model)
    assert frac > 0.9
    cfg = DPOConfig(dtype=dtype, snap_bf16=snap, lr=1e-6, batch_size=8, max_steps=steps, lr_schedule="constant")
    t = DPOTrainer(model, tok, cfg, show_progress=False).setup(pairs())
    t.train()
    now = t.sequence_logps(t.examples)  # (n, 2) under the run's own dtype
    gap = now - t.ref_logps  # policy - reference log-ratios
    return cfg.beta * (gap[:, 0] - gap[:, 1]), gap.abs().mean().item()


def test_midpoint_weights_are_a_real_trap_and_snapping_removes_it():
    fp32_margins, fp32_gap = margins_after("fp32", snap=False)
    trap_margins, trap_gap = margins_after("bf16", snap=False)
    safe_margins, safe_gap = margins_after("bf16", snap=True)
    # the trap: one tiny step moves bf16 log-probs by far more than fp32 training does
    # (measured: mean |policy - reference| 0.085 nats for bf16 unsnapped vs 0.002 fp32 and 0.001
    # snapped; margin error 0.025 unsnapped vs 0.0007 snapped, fp32 margins ~6e-4)
    assert trap_gap > 10 * fp32_gap
    assert (trap_margins - fp32_margins).abs().max() > 10 * (safe_margins - fp32_margins).abs().max()
    # snapped bf16 stays as close to the reference as fp32 training does, and its margins agree
    assert safe_gap < 2 * fp32_gap + 1e-3
    torch.testing.assert_close(safe_margins, fp32_margins, atol=2e-3, rtol=0)


def test_snap_is_idempotent_and_counts():
    model, _ = tiny_causal_lm(seed=1)
    put_on_bf16_midpoints(model)
    assert snap_to_bf16_grid(model) > 0
    assert snap_to_bf16_grid(model) == 0
    for p in model.parameters():
        assert torch.equal(p, p.to(torch.bfloat16).float())
