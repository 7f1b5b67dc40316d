"""SFT: loss only on completion tokens, chat template applied, packing equals unpacked,
gradient accumulation invariance, loss falls."""

import json

import pytest
import torch

from rlhfkit.models import tiny_causal_lm
from rlhfkit.models.logprobs import completion_logps
from rlhfkit.trainers.sft import SFTConfig, SFTExample, SFTTrainer, pack_rows, read_sft_examples

torch.set_num_threads(1)

EXAMPLES = [SFTExample([{"role": "user", "content": f"Echo {w}"}], f"{w} {w}") for w in
            ["cat", "dog", "owl", "bee", "elk", "ant", "cow", "yak"]] + [SFTExample("Plain: hi", " hello")]


def test_chat_template_and_completion_only_targets():
    model, tok = tiny_causal_lm()
    t = SFTTrainer(model, tok, SFTConfig(max_length=64, packing=False), show_progress=False).setup(EXAMPLES[:1])
    prompt, completion = t.rows[0]
    assert tok.decode(prompt.ids) == "<|im_start|>user\nEcho cat<|im_end|>\n<|im_start|>assistant\n"
    assert tok.decode(completion.ids).startswith("cat cat<|im_end|>")  # the template closes the turn
    batch = t.collate(t.rows)
    assert batch.target_ids.tolist() == completion.ids  # prompt tokens are never targets


def test_packing_fills_rows_and_matches_unpacked_loss():
    model, tok = tiny_causal_lm(seed=4)
    packed = SFTTrainer(model, tok, SFTConfig(max_length=128, packing=True), show_progress=False).setup(EXAMPLES)
    plain = SFTTrainer(model, tok, SFTConfig(max_length=128, packing=False), show_progress=False).setup(EXAMPLES)
    assert len(plain.rows) == 9 and len(packed.rows) <= 4
    assert all(sum(len(s.ids) for s in row) <= 128 for row in packed.rows)
    with torch.no_grad():
        a = completion_logps(model, packed.collate(packed.rows), return_tokens=True)[1]
        b = completion_logps(model, plain.collate(plain.rows), return_tokens=True)[1]
    torch.testing.assert_close(a.sum(), b.sum(), atol=1e-4, rtol=0)
    assert a.numel() == b.numel()


def test_pack_rows_first_fit():
    rows = pack_rows([([1] * 3, [2] * 3), ([1] * 5, [2] * 5), ([1] * 2, [2] * 2)], max_length=10, packing=True)
    assert [[len(s.ids) for s in r] for r in rows] == [[3, 3, 2, 2], [5, 5]]
    assert rows[0][3].parent == 2 and rows[0][3].score_as == 2


def test_grad_accumulation_and_loss_falls():
    params = []
    for bs, acc in ((4, 1), (1, 4)):
        model, tok = tiny_causal_lm(seed=5)
        cfg = SFTConfig(lr=1e-3, batch_size=bs, grad_accum=acc, max_steps=2, max_length=64, packing=False,
                        lr_schedule="constant", max_grad_norm=0)
        start = torch.cat([p.detach().flatten() for p in model.parameters()]).clone()
        SFTTrainer(model, tok, cfg, show_progress=False).setup(EXAMPLES).train()
        params.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
        assert (params[-1] - start).abs().max() > 1e-4  # the two steps really moved the weights
    torch.testing.assert_close(params[0], params[1], atol=1e-5, rtol=0)
    model, tok = tiny_causal_lm(seed=5)
    cfg = SFTConfig(lr=3e-3, batch_size=4, epochs=15, max_length=128, lr_schedule="constant")
    hist = SFTTrainer(model, tok, cfg, show_progress=False).setup(EXAMPLES).train()
    assert hist[-1]["loss"] < 0.5 * hist[0]["loss"]


def test_read_sft_examples_shapes_and_errors(tmp_path):
    from rlhfkit.data import DataError

    f = tmp_path / "sft.jsonl"
    f.write_text(json.dumps({"prompt": "a", "completion": "b"}) + "\n"
                 + json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "r"}]}) + "\n")
    ex = read_sft_examples(f)
    assert ex[0] == SFTExample("a", "b") and ex[1].completion == "r"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "a", "completion": "b"}) + "\n" + json.dumps({"prompt": "a", "completion": ""}) + "\n")
    with pytest.raises(DataError) as err:
        read_sft_examples(bad)
    assert err.value.line == 2 and err.value.field == "completion"
