"""Reward training on every kind of label (issue 15, section 1): Plackett-Luce on K-wise rankings
packed as one row, regression on ratings, the mixed-export rule and the --loss flag."""

from __future__ import annotations

import json
import math
import random

import pytest
import torch
from typer.testing import CliRunner

from rlhfkit.data.reward_labels import (RankedResponses, RatedResponse, item_to_rankings, item_to_ratings,
                                        reward_examples)
from rlhfkit.packing import collate_groups, group_slots
from rlhfkit.schema import Annotation, PreferenceItem, item_to_pairs
from rlhfkit.trainers.reward_model import RewardModelTrainer, RewardTrainConfig
from tests.toy_data import count_x, counting_responses, polite_rankings

torch.set_num_threads(1)


def _cfg(model_dir, **kw) -> RewardTrainConfig:
    base = dict(model=str(model_dir), out="", max_length=64, batch_size=8, lr=3e-3, max_steps=4,
                warmup_ratio=0.0, progress=False, log_every=1, resume=False)
    base.update(kw)
    return RewardTrainConfig(**base)


def test_group_slots_mixed_sizes_closed_form():
    # sizes 2, 4, 3: g=0 -> 0,1,2; g=1 -> 3,4,5; g=2 -> (b=1) 6, (b=2) 7; g=3 -> (b=1) 8
    assert group_slots([2, 4, 3]).tolist() == [[0, 3, -1, -1], [1, 4, 6, 8], [2, 5, 7, -1]]
    assert group_slots([2, 2, 2]).tolist() == [[0, 3], [1, 4], [2, 5]]  # g * B + b, as for pairs


# ------------------------------------------------------------------ (a) packed PL == per-ranking PL
def _plain_reward(model, prompt: str, response: str) -> torch.Tensor:
    """One response scored on its own: prompt ids + response ids, one unpadded row, plain forward."""
    tok = model.tokenizer
    ids = tok(prompt, add_special_tokens=True)["input_ids"] + tok(response, add_special_tokens=False)["input_ids"]
    input_ids = torch.tensor([ids])
    return model(input_ids, torch.ones_like(input_ids))[0, 0]


def _pl_nll_by_loop(rewards: list[torch.Tensor], tiers: tuple[tuple[int, ...], ...]) -> torch.Tensor:
    """-log P of a tiered ranking by explicit loops: each response must beat every response in a
    strictly worse tier (tie-mates are left out of its denominator), as losses/reward.py states."""
    tier_of = {i: t for t, tier in enumerate(tiers) for i in tier}
    total = rewards[0] * 0
    for k in tier_of:
        denominator = [rewards[k]] + [rewards[j] for j in tier_of if tier_of[j] > tier_of[k]]
        if len(denominator) > 1:
            total = total + torch.logsumexp(torch.stack(denominator), 0) - rewards[k]
    return total


def _rms_norm_in_input_dtype(self, hidden_states):
    # transformers' LlamaRMSNorm computes in fp32 even for an fp64 model, which leaves ~1e-7 of
    # rounding that differs between batch layouts; this is the same formula in the input's dtype.
    variance = hidden_states.pow(2).mean(-1, keepdim=True)
    return self.weight * (hidden_states * torch.rsqrt(variance + self.variance_epsilon))


@pytest.mark.parametrize("packing", [True, False])
def test_pl_loss_and_gradient_through_packed_rows_equal_per_ranking_loop(tiny_model_dir, packing, monkeypatch):
    """The trainer's PL path (rankings of K = 4 with ties and one K = 3 in one micro-batch, each
    one packed row, read out by ``group_rewards``) against each response scored alone in its own
    row and the tiered PL likelihood written as loops: loss and every parameter's gradient agree
    to 1e-9 in fp64 (the issue asks for 1e-6)."""
    from transformers.models.llama import modeling_llama

    from rlhfkit.models.reward_model import RewardModel

    monkeypatch.setattr(modeling_llama.LlamaRMSNorm, "forward", _rms_norm_in_input_dtype)
    model = RewardModel.from_backbone(str(tiny_model_dir), n_heads=1, seed=3).double()
    with torch.no_grad():
        model.head.weight.normal_(0, 1.0)  # rewards that differ clearly between responses
    rng = random.Random(1)
    words = ["sun", "tea", "code", "rain"]
    rankings = []
    for i, tiers in enumerate([((2,), (0, 1), (3,)), ((0, 3), (1,), (2,)), ((1,), (2,), (0,), (3,)),
                               ((3,), (0, 1, 2)), ((0,), (2, 1))]):  # K = 4 with ties; one K = 3
        k = sum(len(t) for t in tiers)
        texts = tuple(" " + " ".join(rng.choice(words) for _ in range(rng.randint(1, 4 + j))) for j in range(k))
        rankings.append(RankedResponses(f"Q{i}: " + "why " * (i + 1) + "?", texts, tiers, [1.0, 0.5, 2.0, 1.0, 1.5][i]))
    trainer = RewardModelTrainer(_cfg(tiny_model_dir, loss="pl", batch_size=8, packing=packing, max_length=256),
                                 train_pairs=rankings, model=model).setup()
    [(micro, weight)] = trainer.micro_batches(list(range(len(rankings))))
    assert weight == pytest.approx(6.0)
    assert micro[1].group_slots.shape == (5, 4) and (micro[1].group_slots < 0).sum() == 1  # one K = 3
    packed_loss, metrics = trainer.loss(micro)
    packed_grads = torch.autograd.grad(packed_loss, list(model.parameters()), allow_unused=True)

    nll = [_pl_nll_by_loop([_plain_reward(model, r.prompt, t) for t in r.responses], r.tiers) for r in rankings]
    weights = torch.tensor([r.weight for r in rankings], dtype=torch.float64)
    plain_loss = (torch.stack(nll) * weights).sum() / weights.sum()
    plain_grads = torch.autograd.grad(plain_loss, list(model.parameters()), allow_unused=True)

    assert packed_loss.dtype == torch.float64 and packed_loss.item() > 0.5
    torch.testing.assert_close(packed_loss, plain_loss, atol=1e-9, rtol=0)
    compared = 0
    for (name, _), g_packed, g_plain in zip(model.named_parameters(), packed_grads, plain_grads):
        if g_plain is None:
            assert g_packed is None or g_packed.abs().max() == 0, name
            continue
        torch.testing.assert_close(g_packed, g_plain, atol=1e-9, rtol=0, msg=lambda m: f"{name}: {m}")
        compared += 1
    assert compared > 10 and max(g.abs().max().item() for g in plain_grads if g is not None) > 1e-3
    assert 0.0 <= metrics["pair_accuracy"] <= 1.0


# ------------------------------------------------------------------ the mixed-export rule
def _mixed_item() -> PreferenceItem:
    anns = [Annotation(judgement={"kind": "ranking", "tiers": [[2], [0, 1], [3]]}, weight=2.0),
            Annotation(judgement={"kind": "ranking", "tiers": [[0, 1, 2, 3]]}),  # all tied: no order
            Annotation(judgement={"kind": "pairwise", "a": 1, "b": 3, "choice": "b"}),
            Annotation(judgement={"kind": "pairwise", "a": 0, "b": 1, "choice": "tie"}),
            Annotation(judgement={"kind": "rating", "response": 2, "score": 6, "scale_min": 1, "scale_max": 7}),
            Annotation(judgement={"kind": "binary", "response": 0, "thumbs_up": True})]
    return PreferenceItem(prompt="p", responses=[{"text": t} for t in "abcd"], annotations=anns)


def test_mixed_export_rule():
    item = _mixed_item()
    rankings = item_to_rankings(item)
    assert [(r.responses, r.tiers, r.weight) for r in rankings] == [
        (("a", "b", "c", "d"), ((2,), (0, 1), (3,)), 2.0),  # tiers kept whole
        (("d", "b"), ((0,), (1,)), 1.0)]  # the pair as a ranking of two, chosen first
    assert rankings[0].tier_of == [1, 1, 0, 2]
    assert [(r.response, r.score) for r in item_to_ratings(item)] == [("c", 6.0)]
    assert len(reward_examples([item], "bt")) == len(item_to_pairs(item)) == 5 + 1
    assert len(reward_examples([item], "pl")) == 2 and len(reward_examples([item], "regression")) == 1


def test_loss_without_usable_labels_names_the_file(tmp_path, tiny_model_dir):
    from rlhfkit.data import write_items

    ratings_only = PreferenceItem(prompt="p", responses=[{"text": "a"}],
                                  annotations=[Annotation(judgement={"kind": "rating", "response": 0, "score": 3})])
    path = tmp_path / "ratings.jsonl"
    write_items(path, [ratings_only])
    for loss in ("bt", "pl"):
        with pytest.raises(ValueError, match=rf"ratings.jsonl: --loss {loss} needs rankings .* 1 rating .*--loss regression"):
            RewardModelTrainer(_cfg(tiny_model_dir, loss=loss, data=str(path))).setup()
    pairs_path = tmp_path / "pairs.jsonl"
    write_items(pairs_path, [_mixed_item().model_copy(update={"annotations": _mixed_item().annotations[:1]})])
    with pytest.raises(ValueError, match=r"pairs.jsonl: --loss regression needs rating annotations, but the file "
                                         r"holds 1 ranking"):
        RewardModelTrainer(_cfg(tiny_model_dir, loss="regression", data=str(pairs_path))).setup()


# ------------------------------------------------------------------ (c) regression learns
def test_regression_on_ratings_learns_the_gold(tmp_path):
    from rlhfkit.models import save_tiny
    from rlhfkit.models.reward_model import RewardModel
    from rlhfkit.rewards.model_reward import score_groups, tokenize_for_reward

    model_dir = save_tiny(tmp_path / "m", layers=1, hidden=32)
    texts = counting_responses(96, seed=0)
    rng = random.Random(0)
    # rating = 1 + gold count of x (0..8), with +-1 annotator noise, clipped to the 1..9 scale
    train = [RatedResponse("Line:", t, min(9.0, max(1.0, 1 + count_x(t) + rng.choice([-1, 0, 0, 1]))), 1.0, 9.0)
             for t in texts[:64]]
    trainer = RewardModelTrainer(_cfg(model_dir, loss="regression", lr=1e-2, max_steps=40, batch_size=16),
                                 train_pairs=train).setup()
    history = trainer.train()
    first, last = history[0]["loss"], sum(h["loss"] for h in history[-5:]) / 5
    assert last < 0.5 * first  # the squared error falls
    held_out = texts[64:]
    rm = trainer.model
    scores = score_groups(rm, tokenize_for_reward(rm.tokenizer, ["Line:"] * len(held_out), held_out, 64))
    gold = [count_x(t) for t in held_out]
    assert _pearson(scores, gold) > 0.8
    assert isinstance(rm, RewardModel) and "ratings_per_s" in history[-1]


def _pearson(a, b) -> float:
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    return cov / math.sqrt(sum((x - ma) ** 2 for x in a) * sum((y - mb) ** 2 for y in b))


# ------------------------------------------------------------------ PL trains (a quick version of (b))
def test_pl_trains_on_rankings_and_is_evaluated_on_pairs(tiny_model_dir, tmp_path):
    from rlhfkit.schema import PreferencePair

    rankings = polite_rankings(48, seed=0)
    held_out = [PreferencePair(prompt="\n\nHuman: tea?\n\nAssistant:", chosen=" Of course!", rejected=" shut up!!"),
                PreferencePair(prompt="\n\nHuman: sun?\n\nAssistant:", chosen=" Maybe.", rejected=" No. Go away")]
    trainer = RewardModelTrainer(_cfg(tiny_model_dir, loss="pl", max_steps=12, out=str(tmp_path / "rm")),
                                 train_pairs=rankings, eval_pairs=held_out).setup()
    history = trainer.train()
    assert sum(h["loss"] for h in history[-3:]) < sum(h["loss"] for h in history[:3])
    assert "pair_accuracy" in history[-1] and "rankings_per_s" in history[-1]
    assert trainer.evaluate(n_boot=20)["accuracy"] == 1.0
    folder = trainer.save()
    assert json.loads((folder / "rlhfkit_reward.json").read_text())["train_config"]["loss"] == "pl"


# ------------------------------------------------------------------ (d) the CLI flag
def test_cli_has_loss_flag_and_refuses_a_bad_value(tmp_path):
    from rlhfkit.commands.reward import app
    from rlhfkit.models import save_tiny

    runner = CliRunner()
    res = runner.invoke(app, ["train", "--help"], terminal_width=200)
    assert res.exit_code == 0 and "--loss" in res.output and "--bootstrap" in res.output
    tiny = save_tiny(tmp_path / "tiny", layers=1, hidden=16)
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"prompt": "hi", "chosen": " yes", "rejected": " no"}) + "\n")
    res = runner.invoke(app, ["train", "--data", str(data), "--model", str(tiny), "--out", str(tmp_path / "x"),
                              "--loss", "listwise", "--no-progress"])
    assert res.exit_code == 2
    assert "unknown loss 'listwise'; choose bt, pl, regression" in res.output
    res = runner.invoke(app, ["train", "--data", str(data), "--model", str(tiny), "--out", str(tmp_path / "y"),
                              "--loss", "regression", "--no-progress"])
    assert res.exit_code == 2 and "d.jsonl: --loss regression needs rating annotations" in res.output
