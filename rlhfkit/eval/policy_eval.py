"""Held-out evaluation of a preference-optimised policy.

- implicit-reward accuracy: on held-out pairs, the fraction where
  ``beta * (log pi(y_w) - log pi_ref(y_w)) > beta * (log pi(y_l) - log pi_ref(y_l))``;
  the reference log-probs are taken before training (``DPOTrainer.setup(eval_pairs=...)``).
- KL to the reference: ``KL(pi || pi_ref) = E_{y ~ pi}[log pi(y|x) - log pi_ref(y|x)]``,
  estimated on completions *sampled from the trained policy* for held-out prompts and scored
  by both models (the reference is loaded again for this, after training).

``reference_policy`` gives the reference a run actually used (the start model, bf16-snapped
when the run was bf16), so evaluation code does not repeat that rule.
"""

from __future__ import annotations

import torch

from rlhfkit.models.logprobs import completion_logps
from rlhfkit.packing import Segment, collate_rows
from rlhfkit.rollout.token_sampling import sample_completions


def implicit_reward_accuracy(policy_logps: torch.Tensor, ref_logps: torch.Tensor, beta: float) -> dict:
    """policy/ref: (n, 2) summed log-probs of (chosen, rejected)."""
    rewards = beta * (policy_logps - ref_logps)  # (n, 2)
    margin = rewards[:, 0] - rewards[:, 1]
    return {"accuracy": (margin > 0).float().mean().item(), "margin": margin.mean().item(),
            "reward_chosen": rewards[:, 0].mean().item(), "reward_rejected": rewards[:, 1].mean().item(),
            "pairs": int(policy_logps.shape[0])}


@torch.no_grad()
def score(model, prompt_ids: list[list[int]], completions: list[list[int]], pad_id: int,
          dtype: torch.dtype = torch.float32, batch_size: int = 8) -> torch.Tensor:
    """(n,) summed log-probs of each completion after its prompt."""
    out = []
    for start in range(0, len(prompt_ids), batch_size):
        rows = [[Segment(p), Segment(c, 0, i)] for i, (p, c) in
                enumerate(zip(prompt_ids[start : start + batch_size], completions[start : start + batch_size]))]
        out.append(completion_logps(model, collate_rows(rows, pad_id, len(rows)), dtype).float().cpu())
    return torch.cat(out)


def kl_to_reference(policy, reference, tokenizer, prompt_ids: list[list[int]], max_new_tokens: int = 64,
                    seed: int = 0, dtype: torch.dtype = torch.float32) -> dict:
    completions = sample_completions(policy, tokenizer, prompt_ids, max_new_tokens, seed, dtype=dtype)
    lp = score(policy, prompt_ids, completions, tokenizer.pad_token_id, dtype)
    lr = score(reference, prompt_ids, completions, tokenizer.pad_token_id, dtype)
    per_seq = lp - lr
    tokens = sum(len(c) for c in completions)
    return {"kl_per_sequence": per_seq.mean().item(), "kl_per_token": per_seq.sum().item() / tokens,
            "kl_stderr": (per_seq.std() / len(per_seq) ** 0.5).item(), "samples": len(completions),
            "mean_completion_tokens": tokens / len(completions)}


def reference_policy(model_source, dtype: str = "fp32", snap_bf16: bool = True):
    """(model, tokenizer) of the reference a preference-optimisation run used: the start model
    in fp32 masters, snapped to the bf16 grid when the run trained in bf16."""
    from rlhfkit.models import load_causal_lm
    from rlhfkit.models.loading import resolve_dtype_name

    model, tokenizer = load_causal_lm(model_source, dtype="fp32")
    if resolve_dtype_name(dtype) == "bf16" and snap_bf16:
        from rlhfkit.models.numerics import snap_to_bf16_grid

        snap_to_bf16_grid(model)
    return model, tokenizer
