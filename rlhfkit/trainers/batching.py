"""Tokenising and collating (prompt, chosen, rejected) pairs for pairwise trainers.

Shared by the reward-model trainer (and usable by DPO): prompt and responses are tokenised
separately, so the prompt's tokens are known and can be shared.

Truncation keeps what decides a preference: the end of the prompt (the last turns of a long
dialogue) and the start of each response. With L = max_length, a response keeps at most
L - min(len(prompt), L // 4) tokens, and the prompt is cut from the LEFT to fit the longer
response, so both branches use the same prompt tokens and every sequence has <= L tokens.

Two collated layouts, both right-padded:

- plain: 2B rows, chosen rows first, ``[prompt + chosen]`` then ``[prompt + rejected]``.
- packed: B rows ``[prompt, chosen, rejected]`` with a 4D boolean attention mask in which
  rejected tokens see the prompt and themselves but not the chosen tokens, and position ids
  that restart at len(prompt) for the rejected branch; the prompt is run once per pair.
  Reading the hidden state at the last chosen and last rejected token gives exactly the
  values the plain layout gives (tests/test_reward_model.py checks this).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TokenizedPair:
    prompt_ids: list[int]
    chosen_ids: list[int]
    rejected_ids: list[int]
    weight: float = 1.0
    chosen_chars: int = 0  # response lengths in characters, for the length-bias split
    rejected_chars: int = 0

    @property
    def packed_len(self) -> int:
        return len(self.prompt_ids) + len(self.chosen_ids) + len(self.rejected_ids)

    @property
    def plain_len(self) -> int:
        return len(self.prompt_ids) + max(len(self.chosen_ids), len(self.rejected_ids))


def prompt_to_text(prompt, tokenizer) -> str:
    """A string prompt as is; a chat prompt through the tokenizer's chat template."""
    if isinstance(prompt, str):
        return prompt
    messages = [m if isinstance(m, dict) else m.model_dump() for m in prompt]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def truncate_pair(prompt_ids: list[int], chosen_ids: list[int], rejected_ids: list[int],
                  max_length: int) -> tuple[list[int], list[int], list[int]]:
    """Cut responses from the right and the prompt from the left (rule in the module doc)."""
    keep_prompt = min(len(prompt_ids), max_length // 4)
    budget = max_length - keep_prompt
    chosen_ids, rejected_ids = chosen_ids[:budget], rejected_ids[:budget]
    room = max_length - max(len(chosen_ids), len(rejected_ids))
    prompt_ids = prompt_ids[len(prompt_ids) - room:] if len(prompt_ids) > room else prompt_ids
    return prompt_ids, chosen_ids, rejected_ids


def tokenize_pairs(pairs, tokenizer, max_length: int) -> list[TokenizedPair]:
    """PreferencePair-like objects (prompt, chosen, rejected, weight) -> TokenizedPair."""
    prompts = [prompt_to_text(p.prompt, tokenizer) for p in pairs]
    enc_p = tokenizer(prompts, add_special_tokens=True)["input_ids"]
    enc_c = tokenizer([p.chosen for p in pairs], add_special_tokens=False)["input_ids"]
    enc_r = tokenizer([p.rejected for p in pairs], add_special_tokens=False)["input_ids"]
    out = []
    for pair, p_ids, c_ids, r_ids in zip(pairs, enc_p, enc_c, enc_r):
        p_ids, c_ids, r_ids = truncate_pair(p_ids, c_ids, r_ids, max_length)
        if not c_ids or not r_ids:
            raise ValueError("a response tokenised to zero tokens")
        out.append(TokenizedPair(p_ids, c_ids, r_ids, float(getattr(pair, "weight", 1.0)),
                                 len(pair.chosen), len(pair.rejected)))
    return out


def _pad(rows: list[list[int]], value: int) -> torch.Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([r + [value] * (width - len(r)) for r in rows], dtype=torch.long)


def collate_plain(batch: list[TokenizedPair], pad_id: int) -> dict[str, torch.Tensor]:
    """2B right-padded rows: chosen sequences, then rejected ones."""
    rows = [p.prompt_ids + p.chosen_ids for p in batch] + [p.prompt_ids + p.rejected_ids for p in batch]
    input_ids = _pad(rows, pad_id)  # (2B, T)
    attention_mask = _pad([[1] * len(r) for r in rows], 0)  # (2B, T)
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "last_index": attention_mask.sum(dim=1) - 1,  # (2B,)
        "weights": torch.tensor([p.weight for p in batch]),
    }


def collate_packed(batch: list[TokenizedPair], pad_id: int) -> dict[str, torch.Tensor]:
    """B right-padded rows [prompt, chosen, rejected] with a 4D mask and restarted positions."""
    width = max(p.packed_len for p in batch)
    B = len(batch)
    input_ids = torch.full((B, width), pad_id, dtype=torch.long)
    position_ids = torch.zeros((B, width), dtype=torch.long)
    # branch id per token: 0 prompt, 1 chosen, 2 rejected, 3 padding
    branch = torch.full((B, width), 3, dtype=torch.long)
    chosen_index, rejected_index = [], []
    for b, p in enumerate(batch):
        P, C, R = len(p.prompt_ids), len(p.chosen_ids), len(p.rejected_ids)
        input_ids[b, : P + C + R] = torch.tensor(p.prompt_ids + p.chosen_ids + p.rejected_ids)
        position_ids[b, : P + C] = torch.arange(P + C)
        position_ids[b, P + C : P + C + R] = torch.arange(P, P + R)
        branch[b, :P], branch[b, P : P + C], branch[b, P + C : P + C + R] = 0, 1, 2
        chosen_index.append(P + C - 1)
        rejected_index.append(P + C + R - 1)
    q, k = branch.unsqueeze(2), branch.unsqueeze(1)  # (B, T, 1), (B, 1, T)
    causal = torch.ones(width, width, dtype=torch.bool).tril()  # (T, T)
    # a query attends to earlier keys of the prompt or of its own branch; padding sees itself
    same_or_prompt = (k == 0) | (k == q)
    mask = causal & same_or_prompt & (k != 3)
    mask |= torch.eye(width, dtype=torch.bool) & (q == 3)
    return {
        "input_ids": input_ids,  # (B, T)
        "attention_mask": mask.unsqueeze(1),  # (B, 1, T, T) bool, True = may attend
        "position_ids": position_ids,  # (B, T)
        "chosen_index": torch.tensor(chosen_index),  # (B,)
        "rejected_index": torch.tensor(rejected_index),  # (B,)
        "weights": torch.tensor([p.weight for p in batch]),
    }
