"""Packed [prompt | chosen | rejected] log-probs equal the plain per-sequence ones, and both equal
a naive full log-softmax of the model's own logits."""

import torch

torch.set_num_threads(1)  # tiny models: threads only contend on this shared 2-core machine

from rlhfkit.models import tiny_causal_lm
from rlhfkit.schema import PreferencePair
from rlhfkit.models.logprobs import completion_logps
from rlhfkit.packing import Segment, collate_pairs, collate_rows, tokenize_pairs

PAIRS = [
    PreferencePair(prompt="What is 2+2?", chosen=" 4, of course.", rejected=" five"),
    PreferencePair(prompt=[{"role": "user", "content": "Say hi"}], chosen="Hi there!", rejected="No."),
    PreferencePair(prompt="A much longer prompt that sets up some context first.", chosen=" ok", rejected=" a longer answer here"),
]


def _naive(model, prompt_ids, completion_ids):
    ids = torch.tensor([prompt_ids + completion_ids])
    with torch.no_grad():
        logp = model(input_ids=ids).logits.float().log_softmax(-1)[0]  # (T, V)
    p = len(prompt_ids)
    return sum(logp[p - 1 + j, t].item() for j, t in enumerate(completion_ids))


def test_packed_equals_plain_equals_naive():
    model, tok = tiny_causal_lm(seed=1)
    pairs = tokenize_pairs(tok, PAIRS, max_length=64)
    assert len(pairs) == 3
    with torch.no_grad():
        packed = completion_logps(model, collate_pairs(pairs, tok.pad_token_id, shared_prompt=True))
        plain = completion_logps(model, collate_pairs(pairs, tok.pad_token_id, shared_prompt=False))
    naive = torch.tensor([_naive(model, p.prompt_ids, p.chosen_ids) for p in pairs]
                         + [_naive(model, p.prompt_ids, p.rejected_ids) for p in pairs])
    torch.testing.assert_close(packed, plain, atol=1e-5, rtol=0)
    torch.testing.assert_close(packed, naive, atol=1e-5, rtol=0)
    assert packed.abs().min() > 1.0  # real, non-trivial log-probs


def test_packed_gradients_equal_plain():
    model, tok = tiny_causal_lm(seed=2)
    pairs = tokenize_pairs(tok, PAIRS, max_length=64)
    grads = []
    for shared in (True, False):
        model.zero_grad()
        completion_logps(model, collate_pairs(pairs, tok.pad_token_id, shared)).sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    torch.testing.assert_close(grads[0], grads[1], atol=1e-5, rtol=0.00001)


def test_truncation_keeps_start_and_drops_prompt_only_pairs():
    _, tok = tiny_causal_lm()
    long = PreferencePair(prompt="x" * 40, chosen="y" * 30, rejected="z")
    (p,) = tokenize_pairs(tok, [long], max_length=50)
    assert len(p.prompt_ids) + len(p.chosen_ids) == 50 and p.chosen_ids[0] == tok.convert_tokens_to_ids("y")
    assert len(p.rejected_ids) == 2  # "z" + eos
    assert tokenize_pairs(tok, [long], max_length=40) == []


def test_segment_mask_and_positions():
    rows = [[Segment([1, 2, 3]), Segment([4, 5], 0, 0), Segment([6], 0, 1)], [Segment([7]), Segment([8], 0, 2)]]
    b = collate_rows(rows, pad_id=0, num_sequences=3)
    assert b.position_ids[0].tolist() == [0, 1, 2, 3, 4, 3]
    m = b.attention_mask[0, 0].int()
    assert m[5].tolist() == [1, 1, 1, 0, 0, 1]  # rejected token sees the prompt and itself, not chosen
    assert m[4].tolist() == [1, 1, 1, 1, 1, 0]
    assert b.attention_mask[1, 0, 3].int().tolist() == [0, 0, 1, 1, 0, 0]  # padding sees only padding
    assert b.target_ids.tolist() == [4, 5, 6, 8] and b.lengths.tolist() == [2, 1, 1]
    w = b.input_ids.shape[1]
    assert b.source_index.tolist() == [2, 3, 2, w + 0]


def test_length_grouped_batches_cover_everything_and_cut_padding():
    from rlhfkit.trainers.ordering import length_grouped_batches

    g = torch.Generator().manual_seed(0)
    lengths = (torch.rand(200, generator=g) ** 3 * 400 + 20).long().tolist()  # skewed, like dialogue data
    batches = length_grouped_batches(lengths, 4, seed=1, epoch=0)
    assert sorted(i for b in batches for i in b) == list(range(200))
    assert batches == length_grouped_batches(lengths, 4, seed=1, epoch=0)  # resumable: same order
    assert batches != length_grouped_batches(lengths, 4, seed=1, epoch=1)  # but reshuffled per epoch

    def padded(bs):
        return sum(len(b) * max(lengths[i] for i in b) for b in bs)

    perm = torch.randperm(200, generator=g).tolist()
    random_batches = [perm[i : i + 4] for i in range(0, 200, 4)]
    assert padded(batches) < 0.8 * padded(random_batches)
    assert padded(batches) < 1.15 * sum(lengths)  # 10% padding here; random batches pad 110%


def test_the_one_short_batch_comes_last():
    # A short batch in the middle would be an over-weighted step at a random time, and a peer
    # trainer fed our order in fixed-size batches would see different batches from there on.
    from rlhfkit.trainers.ordering import length_grouped_batches

    for n in (53, 101, 7):
        for epoch in range(3):
            batches = length_grouped_batches(list(range(n)), 4, seed=0, epoch=epoch, window=4)
            assert [len(b) for b in batches[:-1]] == [4] * (len(batches) - 1)
            assert len(batches[-1]) == (n % 4 or 4)
            assert sorted(i for b in batches for i in b) == list(range(n))
