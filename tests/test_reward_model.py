"""Reward model: HF loadability, packed == plain scores, ensembles, LoRA merge on save."""

from __future__ import annotations

import pytest
import torch

from rlhfkit.models.reward_model import RewardEnsemble, RewardModel, ensemble_summary
from rlhfkit.schema import PreferencePair
from rlhfkit.packing import collate_pairs, tokenize_reward_pairs, truncate_keep_prompt_end

PAIRS = [
    PreferencePair(prompt="\n\nHuman: how do I bake bread?\n\nAssistant:", chosen=" Mix flour, water, yeast.",
                   rejected=" No."),
    PreferencePair(prompt="\n\nHuman: hi\n\nAssistant:", chosen=" Hello! How can I help?",
                   rejected=" Go away, I am busy right now.", weight=0.5),
    PreferencePair(prompt=[{"role": "user", "content": "2+2?"}], chosen="4", rejected="5, obviously"),
]


@pytest.fixture(scope="module")
def tiny_dir(tiny_model_dir):
    return tiny_model_dir


@pytest.fixture(scope="module")
def rm(tiny_dir):
    torch.manual_seed(0)
    model = RewardModel.from_backbone(tiny_dir, n_heads=1)
    with torch.no_grad():  # a head far from zero so differences are visible
        model.head.weight.normal_(0, 1.0)
    return model.eval()


def test_packed_scores_equal_plain_scores(rm):
    toks = tokenize_reward_pairs(rm.tokenizer, PAIRS, max_length=64)
    pad = rm.tokenizer.pad_token_id
    with torch.no_grad():
        c1, r1 = rm.pair_rewards(collate_pairs(toks, pad, shared_prompt=False))
        c2, r2 = rm.pair_rewards(collate_pairs(toks, pad, shared_prompt=True))
        # each pair alone, no padding at all, through the plain transformers-style forward
        alone = torch.cat([rm(torch.tensor([t.prompt_ids + t.chosen_ids]),
                              torch.ones(1, len(t.prompt_ids) + len(t.chosen_ids), dtype=torch.long)) for t in toks])
    torch.testing.assert_close(c2, c1, atol=1e-5, rtol=0)
    torch.testing.assert_close(r2, r1, atol=1e-5, rtol=0)
    torch.testing.assert_close(c1, alone, atol=1e-5, rtol=0)
    assert (c1 - r1).abs().max() > 1e-3  # the scores are not trivially equal


def test_saved_model_loads_in_transformers_with_same_scores(rm, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = rm.save(tmp_path / "rm")
    hf = AutoModelForSequenceClassification.from_pretrained(out).eval()
    tok = AutoTokenizer.from_pretrained(out)
    texts = ["\n\nHuman: hi\n\nAssistant: Hello!", "\n\nHuman: hi\n\nAssistant: Go away, I am busy."]
    enc = tok(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        theirs = hf(**enc).logits  # (2, 1)
        ours = rm(enc["input_ids"], enc["attention_mask"])
        reloaded = RewardModel.load(out)(enc["input_ids"], enc["attention_mask"])
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    torch.testing.assert_close(reloaded, theirs, atol=1e-5, rtol=0)


def test_lora_is_merged_on_save(tiny_dir, tmp_path):
    pytest.importorskip("peft")
    from transformers import AutoModelForSequenceClassification

    model = RewardModel.from_backbone(tiny_dir).add_lora(r=4, alpha=8)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("lora_" in n for n in trainable) and any("score" in n for n in trainable)
    assert not any("embed_tokens" in n for n in trainable)
    with torch.no_grad():  # make the adapters non-zero so merging matters
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    mask = torch.ones_like(ids)
    with torch.no_grad():
        ours = model(ids, mask)
    out = model.save(tmp_path / "lora_rm")
    hf = AutoModelForSequenceClassification.from_pretrained(out).eval()
    assert not (out / "adapter_config.json").exists()
    with torch.no_grad():
        torch.testing.assert_close(hf(input_ids=ids, attention_mask=mask).logits, ours, atol=1e-5, rtol=0)


def test_multi_head_ensemble_and_separate_members(tiny_dir):
    torch.manual_seed(1)
    heads = RewardModel.from_backbone(tiny_dir, n_heads=3).eval()
    with torch.no_grad():
        heads.head.weight.normal_(0, 1.0)
    toks = tokenize_reward_pairs(heads.tokenizer, PAIRS, max_length=64)
    batch = collate_pairs(toks, heads.tokenizer.pad_token_id)
    with torch.no_grad():
        c, r = heads.pair_rewards(batch)
    assert c.shape == (3, 3)
    s = ensemble_summary(c, r)
    margins = (c - r).tolist()
    for i, row in enumerate(margins):
        mean = sum(row) / 3
        std = (sum((x - mean) ** 2 for x in row) / 3) ** 0.5
        assert s["margin"][i].item() == pytest.approx(mean, abs=1e-6)
        assert s["disagreement"][i].item() == pytest.approx(std, abs=1e-6)
    # two separate single-head members equal to heads 0 and 2
    members = []
    for h in (0, 2):
        m = RewardModel.from_backbone(tiny_dir, n_heads=1).eval()
        m.net.load_state_dict({k: v for k, v in heads.net.state_dict().items() if "score" not in k}, strict=False)
        with torch.no_grad():
            m.head.weight.copy_(heads.head.weight[h : h + 1])
        members.append(m)
    ce, re_ = RewardEnsemble(members).pair_rewards(batch)
    torch.testing.assert_close(ce, c[:, [0, 2]], atol=1e-6, rtol=0)
    torch.testing.assert_close(re_, r[:, [0, 2]], atol=1e-6, rtol=0)
    assert ensemble_summary(ce[:, :1], re_[:, :1])["disagreement"].abs().max() == 0
    # K-wise groups (K = 3 and 2 in one batch): the members' rewards are heads 0 and 2 of the joint model
    from rlhfkit.packing import collate_groups, tokenize_group

    tok = heads.tokenizer
    groups = [tokenize_group(tok, "Pick one.", ["red", "a blue sky", "green"], 64),
              tokenize_group(tok, "Another?", ["yes", "no thanks"], 64, index=1)]
    gbatch = collate_groups(groups, tok.pad_token_id)
    with torch.no_grad():
        joint = heads.group_rewards(gbatch)  # (2, 3, 3)
    separate = RewardEnsemble(members).group_rewards(gbatch)  # (2, 3, 2)
    torch.testing.assert_close(separate, joint[..., [0, 2]], atol=1e-6, rtol=0)
    assert separate[1, 2].abs().max() == 0  # the K=2 group's missing third slot


def test_truncation_keeps_prompt_end_and_response_start():
    p, (c, r) = truncate_keep_prompt_end(list(range(100)), [[1000 + i for i in range(10)], [2000 + i for i in range(30)]], 40)
    assert r == [2000 + i for i in range(30)] and c == [1000 + i for i in range(10)]
    assert p == list(range(90, 100))  # left-truncated to 40 - 30
    p, (c, r) = truncate_keep_prompt_end(list(range(100)), [[1] * 5, [2] * 80], 40)
    assert len(r) == 30 and p == list(range(90, 100))  # response capped at 40 - 40 // 4
    assert max(len(p) + len(c), len(p) + len(r)) <= 40


def test_length_buckets_deterministic_and_complete():
    lengths = [5, 50, 7, 49, 6, 51, 8, 48, 3, 60, 4, 47]
    from rlhfkit.trainers.ordering import length_grouped_batches

    a = length_grouped_batches(lengths, 2, seed=3, epoch=0, window=6)
    assert a == length_grouped_batches(lengths, 2, seed=3, epoch=0, window=6)
    assert sorted(i for b in a for i in b) == list(range(12))
    for b in a:  # sorted within the chunk, so neighbours in a batch are close in length
        assert abs(lengths[b[0]] - lengths[b[-1]]) <= 12
