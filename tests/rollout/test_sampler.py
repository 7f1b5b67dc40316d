"""TorchSampler: log-probs against an independent forward pass, shared prefill, seeds, stops."""

import pytest
import torch

from rlhfkit.models import tiny_causal_lm
from rlhfkit.rollout.sampler import RolloutBatch, Sampler, SamplingParams, TorchSampler


@pytest.fixture(scope="module")
def tiny():
    return tiny_causal_lm()


def encode(tok, texts):
    return [tok.encode(t, add_special_tokens=False) for t in texts]


def reference_logprobs(model, batch: RolloutBatch, i: int, temperature: float):
    """log softmax(logits / temperature) at each generated token, from one unpadded forward pass
    of prompt + completion (no cache, no padding, batch of one)."""
    length = int(batch.completion_lengths[i])
    completion = batch.completion_ids[i, :length]
    ids = torch.tensor([batch.prompt_ids[i] + completion.tolist()])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].float()  # (P + L, V)
    start = len(batch.prompt_ids[i]) - 1
    scores = logits[start : start + length]  # the logits that produced each completion token
    at = completion[:, None]
    tempered = torch.log_softmax(scores / temperature, dim=-1).gather(-1, at).squeeze(-1)
    raw = torch.log_softmax(scores, dim=-1).gather(-1, at).squeeze(-1)
    return tempered, raw


@pytest.mark.parametrize("fused", [True, False], ids=["fused-llama-step", "hf-forward-step"])
@pytest.mark.parametrize("params", [
    SamplingParams(max_new_tokens=10, temperature=0.7, top_p=0.9),
    SamplingParams(max_new_tokens=10, temperature=1.3, top_k=20),
])
def test_logprobs_equal_a_separate_forward_pass(tiny, params, fused):
    model, tok = tiny
    prompts = encode(tok, ["hello world", "hi", "a much longer prompt than the others"])  # left padding
    sampler = TorchSampler(model, tok, fused=fused)
    assert (sampler.fused_weights is not None) == fused
    batch = sampler.sample(prompts, 3, params, seed=0)
    assert batch.completion_ids.shape == (9, 10) and batch.prompt_ids[3] == prompts[1]
    for i in range(9):
        length = int(batch.completion_lengths[i])
        tempered, raw = reference_logprobs(model, batch, i, params.temperature)
        torch.testing.assert_close(batch.logprobs[i, :length], tempered, atol=1e-5, rtol=0)
        torch.testing.assert_close(batch.raw_logprobs[i, :length], raw, atol=1e-5, rtol=0)
    # The n samples of a prompt differ (they are draws, not copies of one).
    assert len({tuple(r) for r in batch.completion_ids[:3].tolist()}) > 1


@pytest.mark.parametrize("fused", [True, False], ids=["fused-llama-step", "hf-forward-step"])
def test_finished_rows_are_masked_and_dropped_without_changing_logprobs(tiny, fused):
    model, tok = tiny
    # A fifth of the byte vocabulary ends a sample, so rows finish at different steps.
    eos = list(range(60, 112))
    sampler = TorchSampler(model, tok, eos_ids=eos, fused=fused)
    prompts = encode(tok, ["abc", "hello there", "xyz xyz xyz"])
    batch = sampler.sample(prompts, 4, SamplingParams(max_new_tokens=16, temperature=1.0), seed=3)
    lengths = batch.completion_lengths.tolist()
    assert len(set(lengths)) > 2 and batch.stats["compactions"] >= 1
    for i, length in enumerate(lengths):
        ids = batch.completion_ids[i].tolist()
        hits = [k for k, t in enumerate(ids[:length]) if t in eos]
        if batch.finish_reasons[i] == "eos":
            assert hits == [length - 1]  # ends at its first EOS, which is kept
        else:
            assert batch.finish_reasons[i] == "length" and length == 16 and not hits
        assert all(t == tok.pad_token_id for t in ids[length:])
        assert not batch.completion_mask[i, length:].any() and (batch.logprobs[i, length:] == 0).all()
        tempered, _ = reference_logprobs(model, batch, i, 1.0)
        torch.testing.assert_close(batch.logprobs[i, :length], tempered, atol=1e-5, rtol=0)


@pytest.mark.parametrize("fused", [True, False], ids=["fused-llama-step", "hf-forward-step"])
def test_prefill_runs_once_per_distinct_prompt(tiny, fused):
    model, tok = tiny
    shapes = []  # token ids entering the embedding: every forward pass, prefill or decode step
    handle = model.model.embed_tokens.register_forward_hook(
        lambda module, args, out: shapes.append(tuple(args[0].shape)))
    try:
        prompts = encode(tok, ["first prompt", "second", "first prompt"])  # one repeated
        sampler = TorchSampler(model, tok, fused=fused)
        batch = sampler.sample(prompts, 4, SamplingParams(max_new_tokens=5), seed=0)
    finally:
        handle.remove()
    width = len(prompts[0])
    assert shapes[0] == (2, width)  # 2 distinct prompts prefilled, not 3 x 4 = 12 rows
    # then one token for each of the 12 samples per step ((12, 1) through HF's forward, (12,) fused)
    assert shapes[1:] == [(12, 1) if not fused else (12,)] * 4
    assert batch.stats["prefill_rows"] == 2 and len(batch.texts) == 12


def test_seeded_and_independent_of_the_global_rng(tiny):
    model, tok = tiny
    sampler = TorchSampler(model, tok)
    prompts = encode(tok, ["one", "two two"])
    params = SamplingParams(max_new_tokens=8, temperature=1.0, top_p=0.95)
    torch.manual_seed(1)
    first = sampler.sample(prompts, 2, params, seed=7)
    state = torch.get_rng_state()
    torch.manual_seed(999)
    again = sampler.sample(prompts, 2, params, seed=7)
    other = sampler.sample(prompts, 2, params, seed=8)
    assert torch.equal(first.completion_ids, again.completion_ids)
    assert torch.equal(first.logprobs, again.logprobs)
    assert not torch.equal(first.completion_ids, other.completion_ids)
    torch.manual_seed(1)
    sampler.sample(prompts, 2, params, seed=7)
    assert torch.equal(torch.get_rng_state(), state)  # the global generator is not consumed


def test_stop_string_ends_the_completion_at_the_token_that_completes_it(tiny):
    model, tok = tiny
    sampler = TorchSampler(model, tok)
    prompts = encode(tok, ["stop test"])
    free = sampler.sample(prompts, 1, SamplingParams(max_new_tokens=24, temperature=0), seed=0)
    ids = free.completion_ids[0].tolist()
    # Pick a stop string from the greedy text, then find, by full decodes, where it first appears.
    text = tok.decode(ids, skip_special_tokens=True)
    stop = next(text[a : a + 2] for a in range(4, len(text) - 2) if text[a : a + 2].isprintable())
    end = next(j for j in range(len(ids)) if stop in tok.decode(ids[: j + 1], skip_special_tokens=True))
    cut = sampler.sample(prompts, 1, SamplingParams(max_new_tokens=24, temperature=0, stop=(stop,)), seed=0)
    assert cut.finish_reasons == ["stop"]
    assert cut.completion_ids[0, : end + 1].tolist() == ids[: end + 1]
    assert int(cut.completion_lengths[0]) == end + 1 and stop in cut.texts[0]
    assert free.finish_reasons[0] in ("length", "eos")


def test_greedy_equals_argmax_and_update_weights_switches_the_policy(tiny):
    model, tok = tiny
    other, _ = tiny_causal_lm(seed=1)
    prompts = encode(tok, ["greedy"])
    params = SamplingParams(max_new_tokens=6, temperature=0)
    sampler = TorchSampler(tiny_causal_lm()[0], tok)
    assert isinstance(sampler, Sampler)
    mine = sampler.sample(prompts, 1, params, seed=0)
    ids = prompts[0] + mine.completion_ids[0].tolist()
    with torch.no_grad():
        argmax = model(input_ids=torch.tensor([ids])).logits[0, len(prompts[0]) - 1 : -1].argmax(-1)
    assert mine.completion_ids[0].tolist() == argmax.tolist()
    sampler.update_weights(other.state_dict())
    theirs = TorchSampler(other, tok).sample(prompts, 1, params, seed=0)
    switched = sampler.sample(prompts, 1, params, seed=0)
    # Random tiny models both tend to repeat the prompt's last byte greedily, so compare log-probs.
    assert torch.equal(switched.completion_ids, theirs.completion_ids)
    assert torch.equal(switched.raw_logprobs, theirs.raw_logprobs)
    assert not torch.equal(theirs.raw_logprobs, mine.raw_logprobs)


def test_bad_input_is_refused_clearly(tiny):
    model, tok = tiny
    sampler = TorchSampler(model, tok)
    with pytest.raises(ValueError, match="prompt 1 is empty"):
        sampler.sample([[5, 6], []], 1, SamplingParams(), seed=0)
    with pytest.raises(ValueError, match="top_p"):
        SamplingParams(top_p=0)
    with pytest.raises(ValueError, match="stop"):
        SamplingParams(stop="\n")


def test_sampler_follows_the_weights_after_a_fused_adamw_step():
    # fused AdamW updates parameters in place without bumping their version counters: a sampler
    # that cached its fused q/k/v and gate/up weights on those counters sampled a stale policy
    model, tok = tiny_causal_lm(seed=5)
    sampler = TorchSampler(model, tok)
    params = SamplingParams(max_new_tokens=6, temperature=1.0)
    prompts = encode(tok, ["update me", "and me too"])
    sampler.sample(prompts, 2, params, seed=0)  # builds the fused weights once
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.05, fused=True)
    model(input_ids=torch.tensor([prompts[0]])).logits.sum().backward()
    optimizer.step()
    batch = sampler.sample(prompts, 2, params, seed=0)
    for i in range(len(batch.texts)):
        tempered, _ = reference_logprobs(model, batch, i, 1.0)
        n = int(batch.completion_lengths[i])
        torch.testing.assert_close(batch.logprobs[i, :n], tempered, atol=1e-5, rtol=0)
