"""ModelReward scores equal plain transformers scoring of the trainer's token sequences."""

import pytest
import torch

from rlhfkit.models.reward_model import RewardModel
from rlhfkit.models.tiny import byte_tokenizer
from rlhfkit.rewards.base import load_reward
from rlhfkit.packing import tokenize_reward_pairs, truncate_keep_prompt_end  # the reward trainer's rule
from rlhfkit.rewards.model_reward import ModelReward, tokenize_for_reward
from rlhfkit.schema import Message, PreferencePair

PROMPTS = ["Say hi.", [{"role": "user", "content": "What is 2 + 2?"}],
           [Message(role="system", content="Be brief."), Message(role="user", content="Name a colour.")],
           "A much longer plain prompt that will need cutting from the left " * 3]
COMPLETIONS = ["Hi!", "4", "Blue, obviously, and nothing else at all.", "Short."]


def tiny_reward_model(n_heads: int = 1) -> RewardModel:
    from transformers import LlamaConfig, LlamaForSequenceClassification

    tokenizer = byte_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, num_labels=n_heads,
                         pad_token_id=tokenizer.pad_token_id, max_position_embeddings=512)
    torch.manual_seed(0)
    net = LlamaForSequenceClassification(config).eval()
    with torch.no_grad():
        net.score.weight.normal_(0, 1.0)  # make rewards differ clearly between sequences
    return RewardModel(net, tokenizer)


def reference_scores(model: RewardModel, prompts, completions, max_length):
    """Token rows from the reward trainer's tokenize_pairs, each scored alone, unpadded, by the
    transformers sequence-classification model itself (its own last-token pooling)."""
    pairs = [PreferencePair(prompt=p, chosen=c, rejected=c) for p, c in zip(prompts, completions)]
    out = []
    for tp in tokenize_reward_pairs(model.tokenizer, pairs, max_length):
        ids = torch.tensor([tp.prompt_ids + tp.chosen_ids])
        with torch.no_grad():
            out.append(model.net(input_ids=ids).logits[0].mean().item())
    return out


@pytest.mark.parametrize("max_length", [512, 40])
def test_scores_match_transformers_on_the_trainers_token_sequences(max_length):
    model = tiny_reward_model()
    ours = ModelReward(model, max_length=max_length, batch_size=3)(PROMPTS, COMPLETIONS)
    ref = reference_scores(model, PROMPTS, COMPLETIONS, max_length)
    assert all(isinstance(x, float) for x in ours)
    assert torch.allclose(torch.tensor(ours), torch.tensor(ref), atol=1e-5, rtol=0)
    assert max(ref) - min(ref) > 1e-2  # the comparison is not between constants


def test_tokenisation_is_the_reward_trainers():
    tokenizer = byte_tokenizer()
    for max_length in (512, 40, 9):
        pairs = [PreferencePair(prompt=p, chosen=c, rejected=c) for p, c in zip(PROMPTS, COMPLETIONS)]
        expected = [(g.prompt_ids, g.chosen_ids) for g in tokenize_reward_pairs(tokenizer, pairs, max_length)]
        got = [(g.prompt_ids, g.completion_ids[0]) for g in tokenize_for_reward(tokenizer, PROMPTS, COMPLETIONS, max_length)]
        assert got == expected
    # without truncation, by hand: the rendered prompt with special tokens, the answer alone, no EOS
    (g,) = tokenize_for_reward(tokenizer, [PROMPTS[1]], ["4"], 512)
    text = "<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n<|im_start|>assistant\n"
    assert g.prompt_ids == tokenizer(text)["input_ids"] and g.completion_ids == [[tokenizer.convert_tokens_to_ids("4")]]


def test_truncation_rule_by_hand():
    # L = 8: the prompt keeps min(6, 8 // 4) = 2 tokens of room, the completion at most 6;
    # a 3-token completion leaves 5 tokens for the prompt, cut from the left
    assert truncate_keep_prompt_end([1, 2, 3, 4, 5, 6], [[7, 8, 9, 10, 11, 12, 13]], 8) == ([5, 6], [[7, 8, 9, 10, 11, 12]])
    assert truncate_keep_prompt_end([1, 2, 3, 4, 5, 6], [[7, 8, 9]], 8) == ([2, 3, 4, 5, 6], [[7, 8, 9]])


def test_multi_head_mean_empty_completion_and_saved_folder(tmp_path):
    model = tiny_reward_model(n_heads=3)
    fn = ModelReward(model, empty_reward=-7.0)
    scores = fn(PROMPTS[:2] + ["x"], COMPLETIONS[:2] + [""])
    assert scores[2] == -7.0
    assert scores[:2] == pytest.approx(reference_scores(model, PROMPTS[:2], COMPLETIONS[:2], 512), abs=1e-5)
    model.save(tmp_path / "rm")
    loaded = load_reward(str(tmp_path / "rm"))
    assert loaded(PROMPTS, COMPLETIONS) == pytest.approx(ModelReward(model)(PROMPTS, COMPLETIONS), abs=1e-5)
    # and the folder read back by plain transformers scores the trainer's sequences the same
    from transformers import AutoModelForSequenceClassification

    plain = RewardModel(AutoModelForSequenceClassification.from_pretrained(tmp_path / "rm").eval(), model.tokenizer)
    assert loaded(PROMPTS, COMPLETIONS) == pytest.approx(reference_scores(plain, PROMPTS, COMPLETIONS, 512), abs=1e-5)
