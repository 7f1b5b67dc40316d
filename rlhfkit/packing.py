"""One packing layer: prompt + completions -> token ids -> rows of segments -> read-outs.

Every trainer and evaluator that runs text through a model goes through here: the reward model
(BT and, later, K-wise rankings), the DPO family and KTO, SFT, policy evaluation, and online RL.

Tokenisation (``tokenize_group``): a prompt and G completions become ``TokenizedGroup``
``(prompt_ids, [completion_ids, ...])``. What differs between uses are options:

- ``close_turn=True`` (DPO, SFT, KTO, log-probs of sampled text): the way TRL 1.16 tokenises.
  Chat prompts go through the chat template, prompt + assistant answer as one conversation (the
  template closes the turn, so the end-of-turn token is scored); plain-text prompts are
  concatenated with the completion and EOS is appended. The completion starts where the two
  tokenisations diverge.
- ``close_turn=False`` (reward model): the prompt rendered as text (chat template with the
  generation prompt) and tokenised with special tokens; each completion tokenised on its own,
  no EOS: the reward is read at the last token of the answer itself.
- ``truncation="keep_start"`` (TRL's rule): ``prompt + completion`` is cut to ``max_length``
  keeping the start; a group whose prompt alone fills ``max_length`` is dropped.
- ``truncation="keep_prompt_end"`` (reward model): what decides a preference is the end of the
  prompt (the last turns) and the start of each answer. With L = max_length, a completion keeps
  at most ``L - min(len(prompt), L // 4)`` tokens and the prompt is cut from the LEFT to fit the
  longest completion, so all completions share the same prompt tokens.

Segment rows (``collate_rows``): one row of the batch holds several token segments, and a segment
may continue another ("parent") segment. A token sees the earlier tokens of its own segment and
all tokens of its ancestors, nothing else; its position id continues from the end of its parent.
So a group is one row ``[prompt | c1 | ... | cG]`` (a DPO pair is G=2, a GRPO group of G
completions is one row, the prompt is computed once), and SFT packing is one row
``[p1 | c1 | p2 | c2 | ...]`` of independent examples.

Read-outs: each scored segment is an output sequence. ``PackedBatch.source_index`` /
``target_ids`` give, per scored token, the hidden state that predicts it (per-token log-probs,
``rlhfkit.models.logprobs``); ``last_index`` gives the last token of each scored segment
(rewards, ``RewardModel.rewards``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch

TRUNCATION = ("keep_start", "keep_prompt_end")


# --------------------------------------------------------------------------- prompts
def prompt_messages(prompt) -> list[dict] | None:
    """Chat messages as plain dicts, or None for a plain-text prompt."""
    if isinstance(prompt, str):
        return None
    return [m if isinstance(m, dict) else m.model_dump() for m in prompt]


def render_prompt(tokenizer, prompt) -> str:
    """A string prompt as is; a chat prompt through the chat template, assistant slot opened."""
    messages = prompt_messages(prompt)
    if messages is None:
        return prompt
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


# --------------------------------------------------------------------------- tokenisation
@dataclass
class TokenizedGroup:
    """A prompt and its G completions as token ids, already truncated.

    ``index`` is the group's position in the data it came from; ``weight`` its per-example weight
    (annotator reliability); ``completion_chars`` the completions' lengths in characters (for the
    length-bias diagnostics). A preference pair is G=2 with ``chosen_ids`` first.
    """

    prompt_ids: list[int]
    completion_ids: list[list[int]]
    index: int = 0
    weight: float = 1.0
    completion_chars: tuple[int, ...] = ()

    @property
    def chosen_ids(self) -> list[int]:
        return self.completion_ids[0]

    @property
    def rejected_ids(self) -> list[int]:
        return self.completion_ids[1]

    @property
    def packed_len(self) -> int:
        """Tokens of the one-row layout ``[prompt | c1 | ... | cG]``."""
        return len(self.prompt_ids) + sum(len(c) for c in self.completion_ids)

    @property
    def plain_len(self) -> int:
        """Tokens of the longest ``prompt + completion`` row of the plain layout."""
        return len(self.prompt_ids) + max(len(c) for c in self.completion_ids)


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _closed_turn_ids(tokenizer, prompt, completions: Sequence[str]) -> tuple[list[int], list[list[int]]]:
    messages = prompt_messages(prompt)
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


def _open_turn_ids(tokenizer, prompt, completions: Sequence[str]) -> tuple[list[int], list[list[int]]]:
    prompt_ids = list(tokenizer(render_prompt(tokenizer, prompt), add_special_tokens=True)["input_ids"])
    completion_ids = [list(ids) for ids in tokenizer(list(completions), add_special_tokens=False)["input_ids"]]
    return prompt_ids, completion_ids


def truncate_keep_prompt_end(prompt_ids: list[int], completion_ids: list[list[int]], max_length: int):
    """Cut completions from the right and the prompt from the left (rule in the module doc)."""
    keep_prompt = min(len(prompt_ids), max_length // 4)
    budget = max_length - keep_prompt
    completion_ids = [c[:budget] for c in completion_ids]
    room = max_length - max(len(c) for c in completion_ids)
    if len(prompt_ids) > room:
        prompt_ids = prompt_ids[len(prompt_ids) - room:]
    return prompt_ids, completion_ids


def tokenize_group(tokenizer, prompt, completions: Sequence[str], max_length: int | None = None, *,
                   close_turn: bool = True, truncation: str = "keep_start", index: int = 0,
                   weight: float = 1.0) -> TokenizedGroup | None:
    """One prompt and its completions -> ``TokenizedGroup`` (options in the module docstring).

    Returns None when the group has nothing left to score: with ``keep_start``, when the prompt
    alone fills ``max_length``; with ``keep_prompt_end``, when a completion has no token.
    """
    if truncation not in TRUNCATION:
        raise ValueError(f"unknown truncation {truncation!r}; choose {' or '.join(TRUNCATION)}")
    tokenize = _closed_turn_ids if close_turn else _open_turn_ids
    prompt_ids, completion_ids = tokenize(tokenizer, prompt, completions)
    if max_length is not None:
        if truncation == "keep_start":
            room = max_length - len(prompt_ids)
            if room <= 0:
                return None
            completion_ids = [c[:room] for c in completion_ids]
        else:
            prompt_ids, completion_ids = truncate_keep_prompt_end(prompt_ids, completion_ids, max_length)
    if truncation == "keep_prompt_end" and not all(completion_ids):
        return None
    return TokenizedGroup(prompt_ids, completion_ids, index, float(weight), tuple(len(c) for c in completions))


def tokenize_pairs(tokenizer, pairs, max_length: int, *, close_turn: bool = True,
                   truncation: str = "keep_start") -> list[TokenizedGroup]:
    """``PreferencePair``-like objects (prompt, chosen, rejected, weight) -> groups of two.

    Pairs that cannot be scored (see ``tokenize_group``) are left out; ``index`` keeps each
    group's position in ``pairs``.
    """
    out = []
    for i, pair in enumerate(pairs):
        group = tokenize_group(tokenizer, pair.prompt, [pair.chosen, pair.rejected], max_length,
                               close_turn=close_turn, truncation=truncation, index=i,
                               weight=float(getattr(pair, "weight", 1.0)))
        if group is not None:
            out.append(group)
    return out


REWARD_TOKENIZATION = {"close_turn": False, "truncation": "keep_prompt_end"}
"""How reward models read text: the answer without an end-of-turn token, the prompt's end kept."""


def tokenize_reward_pairs(tokenizer, pairs, max_length: int) -> list[TokenizedGroup]:
    """Pairs tokenised the way reward models are trained and scored; a pair with an empty answer
    is an error here (a reward model cannot score nothing)."""
    groups = tokenize_pairs(tokenizer, pairs, max_length, **REWARD_TOKENIZATION)
    if len(groups) < len(pairs):
        kept = {g.index for g in groups}
        first = next(i for i in range(len(pairs)) if i not in kept)
        raise ValueError(f"pair {first}: a response tokenised to zero tokens")
    return groups


def tokenize_reward_groups(tokenizer, examples, max_length: int) -> list[TokenizedGroup]:
    """``(prompt, completions, weight)`` triples tokenised the way reward models read text: a
    K-wise ranking is one group of K (``[prompt | r1 | ... | rK]`` when collated), a rated
    response a group of one. An empty answer is an error, as in ``tokenize_reward_pairs``."""
    out = []
    for i, (prompt, completions, weight) in enumerate(examples):
        group = tokenize_group(tokenizer, prompt, list(completions), max_length, index=i, weight=float(weight),
                               **REWARD_TOKENIZATION)
        if group is None:
            raise ValueError(f"example {i}: a response tokenised to zero tokens")
        out.append(group)
    return out


# --------------------------------------------------------------------------- segment rows
@dataclass
class Segment:
    ids: list[int]
    parent: int | None = None  # index of the segment (in the same row) this one continues
    score_as: int | None = None  # output sequence number of this segment (read out), or None


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
    last_index: torch.Tensor = field(default=None)  # (S,) flat index into B*L of each sequence's last token
    target_position: torch.Tensor = field(default=None)  # (N,) position of each scored token in its sequence
    group_slots: torch.Tensor = field(default=None)  # (B, G) output sequence of completion g of group b; -1 = none

    @property
    def num_tokens(self) -> int:
        return int(self.input_ids.numel())

    def to(self, device) -> "PackedBatch":
        moved = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in self.__dict__.items()}
        return PackedBatch(**moved)


def collate_rows(rows: list[list[Segment]], pad_id: int, num_sequences: int) -> PackedBatch:
    """Lay out rows of segments, right-padded to the longest row, with the segment attention mask."""
    width = max(sum(len(s.ids) for s in row) for row in rows)
    b = len(rows)
    input_ids = torch.full((b, width), pad_id, dtype=torch.long)
    position_ids = torch.zeros((b, width), dtype=torch.long)
    seg_of = torch.full((b, width), -1, dtype=torch.long)
    visible = []  # per row (S+1, S+1): segment i may see segment j; the last one is padding
    sources, targets, seqs, offsets = [], [], [], []
    last = [0] * num_sequences
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
                if n == 0 or seg.parent is None or ends[seg.parent] == starts[seg.parent]:
                    raise ValueError("a scored segment needs tokens and a non-empty parent to predict its first token")
                last[seg.score_as] = r * width + cursor + n - 1
                # token j of this segment is predicted by the token before it in its chain
                prev = [ends[seg.parent] - 1] + list(range(cursor, cursor + n - 1))
                sources += [r * width + p for p in prev]
                targets += seg.ids
                seqs += [seg.score_as] * n
                offsets += range(n)
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
        last_index=torch.tensor(last, dtype=torch.long),
        target_position=torch.tensor(offsets, dtype=torch.long),
    )


def per_sequence(values: torch.Tensor, batch: PackedBatch, width: int | None = None) -> torch.Tensor:
    """(N,) per-token values in ``batch.target_ids`` order -> (S, T) right-padded with zeros, row s
    holding output sequence s (T = the longest sequence, or ``width``)."""
    width = width if width is not None else int(batch.lengths.max()) if batch.num_sequences else 0
    out = values.new_zeros((batch.num_sequences, width))
    return out.index_put((batch.sequence_index.to(values.device), batch.target_position.to(values.device)), values)


def group_slots(sizes: Sequence[int]) -> torch.Tensor:
    """(B, G_max) output-sequence number of completion g of group b, -1 where group b has fewer
    than G_max completions. Numbering is completion-major over the completions that exist:

        s = 0
        for g in range(G_max):
            for b in range(B):
                if g < sizes[b]: slots[b, g] = s; s += 1

    so when every group has G completions, ``slots[b, g] = g * B + b``."""
    width = max(sizes) if sizes else 0
    slots = torch.full((len(sizes), width), -1, dtype=torch.long)
    s = 0
    for g in range(width):
        for b, size in enumerate(sizes):
            if g < size:
                slots[b, g] = s
                s += 1
    return slots


def collate_groups(groups: list[TokenizedGroup], pad_id: int, shared_prompt: bool = True) -> PackedBatch:
    """A batch of B groups of completions; output sequence ``group_slots(sizes)[b, g]`` is
    completion g of group b. With G completions in every group that is ``g * B + b`` (for pairs:
    ``[chosen_0..chosen_{B-1}, rejected_0..rejected_{B-1}]``); groups of different sizes (K-wise
    rankings of different K) may share a batch, and ``PackedBatch.group_slots`` holds the map.

    ``shared_prompt=True``: one row per group, ``[prompt | c1 | ... | cG]``.
    ``shared_prompt=False``: the plain layout, one row ``prompt + c_g`` per completion
    (completion-major, in output-sequence order).
    """
    slots = group_slots([len(g.completion_ids) for g in groups])
    if shared_prompt:
        rows = [[Segment(g.prompt_ids)] + [Segment(c, 0, int(slots[i, k])) for k, c in enumerate(g.completion_ids)]
                for i, g in enumerate(groups)]
    else:
        rows = [[Segment(g.prompt_ids), Segment(g.completion_ids[k], 0, int(slots[i, k]))]
                for k in range(slots.shape[1]) for i, g in enumerate(groups) if k < len(g.completion_ids)]
    batch = collate_rows(rows, pad_id, int((slots >= 0).sum()))
    batch.group_slots = slots
    return batch


collate_pairs = collate_groups  # a pair is a group of two: the name the pairwise trainers read best
