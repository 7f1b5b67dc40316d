"""choose_tokens against Hugging Face's logits warpers, the independent reference."""

import pytest
import torch
from transformers.generation.logits_process import (
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from rlhfkit.rollout import sampling
from rlhfkit.rollout.sampling import choose_tokens


def hf_distribution(logits, temperature, top_k, top_p):
    """The distribution HF generate samples from: temperature, then top-k, then top-p."""
    warpers = LogitsProcessorList([TemperatureLogitsWarper(temperature)])
    if top_k:
        warpers.append(TopKLogitsWarper(top_k))
    if top_p < 1:
        warpers.append(TopPLogitsWarper(top_p))
    return torch.softmax(warpers(None, logits.clone()), dim=-1)


def make_logits(vocab, spread, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(1, vocab, generator=gen) * spread


@pytest.mark.parametrize("case", [
    # (vocab, logit spread, temperature, top_k, top_p): peaked -> 64 candidates suffice;
    # flat -> the nucleus needs more than 1,024 tokens and the full sort runs.
    (3000, 3.0, 0.8, 0, 0.9),
    (1500, 0.1, 1.0, 0, 0.95),
    (3000, 1.0, 1.2, 40, 0.8),
    (3000, 1.0, 0.7, 25, 1.0),
    (3000, 1.0, 1.0, 0, 1.0),  # no truncation: the plain draw
])
def test_draws_follow_the_hf_warped_distribution(case):
    vocab, spread, temperature, top_k, top_p = case
    logits = make_logits(vocab, spread)
    expected = hf_distribution(logits, temperature, top_k, top_p)[0]  # (V,)
    draws = 10_000
    gen = torch.Generator().manual_seed(1)
    tokens, logprobs, raw = choose_tokens(logits.expand(draws, vocab), temperature, top_k, top_p, gen)
    support = expected > 0
    assert support[tokens].all()  # never a token HF's warpers remove
    # Compare masses in ten buckets of tokens ordered by probability (each bucket ~10% of the
    # mass): per-token frequencies of a flat distribution would be all noise at this sample size.
    order = expected.argsort(descending=True)
    bucket = torch.empty(vocab, dtype=torch.long)
    bucket[order] = ((expected[order].cumsum(0) - expected[order]) * 10).long().clamp(max=9)
    drawn = torch.bincount(bucket[tokens], minlength=10).double() / draws
    want = torch.zeros(10, dtype=torch.float64).index_add_(0, bucket, expected.double())
    assert (drawn - want).abs().max() < 0.02  # standard error per bucket <= 0.005
    # Log-probs are those of the untruncated tempered distribution, at temperature 1 for raw.
    torch.testing.assert_close(logprobs, torch.log_softmax(logits / temperature, -1)[0, tokens], atol=1e-5, rtol=0)
    torch.testing.assert_close(raw, torch.log_softmax(logits, -1)[0, tokens], atol=1e-5, rtol=0)


def test_candidate_top_p_keeps_exactly_the_full_sort_nucleus():
    """A peaked row: 20 likely tokens hold ~97% of the mass, so the 0.9-nucleus fits in the 64
    candidates. Every nucleus token (HF's support) is drawn and nothing else."""
    logits = torch.full((1, 5000), -4.0)
    logits[0, torch.arange(20) * 97] = torch.linspace(5.0, 2.0, 20)
    nucleus = set(torch.nonzero(hf_distribution(logits, 1.0, 0, 0.9)[0]).squeeze(1).tolist())
    assert 5 < len(nucleus) < 20
    gen = torch.Generator().manual_seed(3)
    tokens, _, _ = choose_tokens(logits.expand(20_000, 5000), 1.0, 0, 0.9, gen)
    assert set(tokens.tolist()) == nucleus


def test_greedy_and_no_truncation():
    logits = torch.tensor([[0.0, 2.0, 1.0], [3.0, -1.0, 0.0]])
    tokens, logprobs, raw = choose_tokens(logits, 0.0)
    assert tokens.tolist() == [1, 0]
    torch.testing.assert_close(logprobs, torch.log_softmax(logits, -1)[[0, 1], [1, 0]])
    torch.testing.assert_close(raw, logprobs)


def test_draw_rows_is_the_multinomial_distribution_and_skips_zero_weights(monkeypatch):
    weights = torch.tensor([[0.0, 1.0, 0.0, 3.0, 0.0], [2.0, 0.0, 0.0, 0.0, 2.0]])
    gen = torch.Generator().manual_seed(0)
    draws = torch.stack([sampling.draw_rows(weights, gen) for _ in range(20_000)])  # (N, 2)
    first = torch.bincount(draws[:, 0], minlength=5).double() / len(draws)
    second = torch.bincount(draws[:, 1], minlength=5).double() / len(draws)
    assert first[[0, 2, 4]].sum() == 0 and second[[1, 2, 3]].sum() == 0  # zero weight: never drawn
    assert abs(first[3] - 0.75) < 0.015 and abs(second[0] - 0.5) < 0.015  # standard error ~0.0035
    # the same generator state gives the same draws
    a = sampling.draw_rows(weights.repeat(25, 1), torch.Generator().manual_seed(7))
    b = sampling.draw_rows(weights.repeat(25, 1), torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    # u rounded up to the row's total (past every cumulative sum) lands on the last positive entry
    monkeypatch.setattr(torch, "rand", lambda rows, cols, **kw: torch.ones(rows, cols, dtype=kw.get("dtype")))
    assert sampling.draw_rows(weights, None).tolist() == [3, 4]
