"""Tokenising preference/SFT examples and collating them with as little padding as possible.

Shared by the SFT and DPO-family trainers (and usable by reward-model training).

The central idea is the *segment row*: one row of the batch holds several token segments, and
a segment may continue another ("parent") segment. A token sees the earlier tokens of its own
segment and all tokens of its ancestor segments, nothing else; its position id continues from
the end of its parent. So

- a DPO pair is one row ``[prompt | chosen | rejected]`` where chosen and rejected both
  continue the prompt: the prompt is computed once instead of twice, and each completion gets
  exactly the attention and positions it would get in its own ``prompt + completion`` sequence;
- SFT packing is one row ``[p1 | c1 | p2 | c2 | ...]`` of independent examples.

Only completion segments are scored: their log-probs are read from the hidden state of the
previous token in the same chain (for a completion's first token, the last prompt token).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


# --------------------------------------------------------------------------- tokenisation
@dataclass
class TokenizedPair:
    """A preference pair as token ids, already truncated; ``index`` is its position in the data."""

    prompt_ids: list[int]
    chosen_ids: list[int]
    rejected_ids: list[int]
    index: int = 0

    @property
    def packed_len(self) -> int:
        return len(self.prompt_ids) + len(self.chosen_ids) + len(self.rejected_ids)


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _as_messages(prompt) -> list[dict] | None:
    if isinstance(prompt, str):
        return None
    return [m if isinstance(m, dict) else m.model_dump() for m in prompt]


def tokenize_prompt_completions(tokenizer, prompt, completions: list[str]) -> tuple[list[int], list[list[int]]]:
    """(prompt_ids, [completion_ids, ...]) the way TRL 1.16 tokenises them.

    Chat prompts (a list of messages) go through the chat template: the prompt with the
    generation prompt, and prompt + assistant answer as a whole conversation (the template
    closes the turn). Plain-text prompts are concatenated with the completion, and EOS is
    appended. The completion starts where the two tokenisations diverge.
    """
    messages = _as_messages(prompt)
    if messages is not None:
        prompt_ids = list(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                        return_dict=True)["input_ids"])
        fulls = [list(tokenizer.apply_chat_template(messages + [{"role": "assistant", "content": c}],
                                                    tokenize=True, return_dict=True)["input_ids"])
                 for c in completions]
    else:
        eos = tokenizer.eos_token
        prompt_ids = list(tokenizer(text=prompt)["input_ids"])
        fulls = [list(tokenizer(text=prompt + (c if c.endswith(eos) else c + eos))["input_ids"]) for c in completions]
    cut = min(_common_prefix(prompt_ids, f) for f in fulls)
    return prompt_ids[:cut], [f[cut:] for f in fulls]


def tokenize_pairs(tokenizer, pairs, max_length: int) -> list[TokenizedPair]:
    """Tokenise ``PreferencePair``s; ``prompt + completion`` is cut to ``max_length`` keeping the
    start (TRL's ``keep_start``), and pairs whose prompt alone fills ``max_length`` are dropped
    (they would have no completion token left to learn from)."""
    out = []
    for i, pair in enumerate(pairs):
        prompt_ids, (chosen, rejected) = tokenize_prompt_completions(tokenizer, pair.prompt, [pair.chosen, pair.rejected])
        room = max_length - len(prompt_ids)
        if room <= 0:
            continue
        out.append(TokenizedPair(prompt_ids, chosen[:room], rejected[:room], index=i))
    return out


# --------------------------------------------------------------------------- segment rows
@dataclass
class Segment:
    ids: list[int]
    parent: int | None = None  # index of the segment (in the same row) this one continues
    score_as: int | None = None  # output sequence number whose log-prob sums this segment's tokens


@dataclass
class PackedBatch:
    input_ids: torch.Tensor  # (B, L) long
    position_ids: torch.Tensor  # (B, L) long
    attention_mask: torch.Tensor  # (B, 1, L, L) bool, True = may attend
    source_index: torch.Tensor  # (N,) flat index into B*L of the hidden state that predicts each target
    target_ids: torch.Tensor  # (N,) the scored tokens
    sequence_index: torch.Tensor  # (N,) which output sequence each scored token belongs to
    num_sequences: int
    lengths: torch.Tensor = field(default=None)  # (S,) scored tokens per output sequence

    @property
    def num_tokens(self) -> int:
        return int(self.input_ids.numel())


def collate_rows(rows: list[list[Segment]], pad_id: int, num_sequences: int) -> PackedBatch:
    """Lay out rows of segments, right-padded to the longest row, with the segment attention mask."""
    width = max(sum(len(s.ids) for s in row) for row in rows)
    b = len(rows)
    input_ids = torch.full((b, width), pad_id, dtype=torch.long)
    position_ids = torch.zeros((b, width), dtype=torch.long)
    seg_of = torch.full((b, width), -1, dtype=torch.long)
    visible = []  # per row (S+1, S+1): segment i may see segment j; the last one is padding
    sources, targets, seqs = [], [], []
    for r, row in enumerate(rows):
        starts, ends, pos_end = [], [], []
        cursor = 0
        vis = torch.eye(len(row) + 1, dtype=torch.bool)
        for k, seg in enumerate(row):
            n = len(seg.ids)
            first_pos = 0 if seg.parent is None else pos_end[seg.parent]
            input_ids[r, cursor : cursor + n] = torch.tensor(seg.ids, dtype=torch.long)
            position_ids[r, cursor : cursor + n] = torch.arange(first_pos, first_pos + n)
            seg_of[r, cursor : cursor + n] = k
            if seg.parent is not None:
                vis[k] |= vis[seg.parent]
            if seg.score_as is not None:
                if seg.parent is None or ends[seg.parent] == starts[seg.parent]:
                    raise ValueError("a scored segment needs a non-empty parent to predict its first token")
                # token j of this segment is predicted by the token before it in its chain
                prev = [ends[seg.parent] - 1] + list(range(cursor, cursor + n - 1))
                sources += [r * width + p for p in prev]
                targets += seg.ids
                seqs += [seg.score_as] * n
            starts.append(cursor)
            ends.append(cursor + n)
            pos_end.append(first_pos + n)
            cursor += n
        seg_of[r, cursor:] = len(row)
        visible.append(vis)
    mask = torch.stack([vis[s[:, None], s[None, :]] for vis, s in zip(visible, seg_of)])  # (B, L, L)
    mask &= torch.ones(width, width, dtype=torch.bool).tril()
    seq_index = torch.tensor(seqs, dtype=torch.long)
    return PackedBatch(
        input_ids=input_ids,
        position_ids=position_ids,
        attention_mask=mask[:, None],
        source_index=torch.tensor(sources, dtype=torch.long),
        target_ids=torch.tensor(targets, dtype=torch.long),
        sequence_index=seq_index,
        num_sequences=num_sequences,
        lengths=torch.bincount(seq_index, minlength=num_sequences),
    )


def collate_pairs(pairs: list[TokenizedPair], pad_id: int, shared_prompt: bool = True) -> PackedBatch:
    """A batch of B pairs; output sequences are ``[chosen_0..chosen_{B-1}, rejected_0..]``.

    ``shared_prompt=True``: one row per pair, ``[prompt | chosen | rejected]``.
    ``shared_prompt=False``: the plain layout, 2B rows ``prompt + chosen`` then ``prompt + rejected``.
    """
    b = len(pairs)
    if shared_prompt:
        rows = [[Segment(p.prompt_ids), Segment(p.chosen_ids, 0, i), Segment(p.rejected_ids, 0, b + i)]
                for i, p in enumerate(pairs)]
    else:
        rows = [[Segment(p.prompt_ids), Segment(p.chosen_ids, 0, i)] for i, p in enumerate(pairs)]
        rows += [[Segment(p.prompt_ids), Segment(p.rejected_ids, 0, b + i)] for i, p in enumerate(pairs)]
    return collate_rows(rows, pad_id, 2 * b)

