"""Supervised fine-tuning on (prompt, completion) examples.

Phases (``SFTTrainer``): tokenize (chat template for message prompts, EOS for plain text) ->
pack short examples into rows of at most ``max_length`` tokens (each example keeps its own
attention block and position ids, see ``rlhfkit/packing.py``) -> train: the loss is the mean negative
log-likelihood of the *completion* tokens only, averaged over all completion tokens of the
optimiser step (so gradient accumulation does not change it) -> save a HF folder.

Data: JSONL records ``{"prompt": str | messages, "completion": str}``, ``{"messages": [...]}``
(the last assistant message is the completion), or any preference file ``rlhfkit.data`` reads
(the chosen answer is the completion).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from rlhfkit.models.logprobs import completion_logps
from rlhfkit.packing import Segment, collate_rows, tokenize_group
from rlhfkit.trainers import loop
from rlhfkit.trainers.config import SFTConfig  # noqa: F401  (re-exported for callers)


@dataclass
class SFTExample:
    prompt: str | list
    completion: str


def read_sft_examples(path: str | Path) -> list[SFTExample]:
    """Examples from a JSONL file in any of the shapes in the module docstring."""
    from rlhfkit.data import DataError, load_pairs
    from rlhfkit.data.io import iter_records

    out = []
    for lineno, record in iter_records(path):
        if not isinstance(record, dict):
            raise DataError(path, lineno, None, "expected a JSON object")
        if "completion" in record and "label" not in record:
            if not isinstance(record.get("completion"), str) or not record["completion"].strip():
                raise DataError(path, lineno, "completion", "expected a non-empty string")
            if "prompt" not in record:
                raise DataError(path, lineno, "prompt", "missing")
            out.append(SFTExample(record["prompt"], record["completion"]))
        elif "messages" in record:
            msgs = record["messages"]
            if not isinstance(msgs, list) or len(msgs) < 2 or msgs[-1].get("role") != "assistant":
                raise DataError(path, lineno, "messages", "need prompt messages then a final assistant message")
            out.append(SFTExample(msgs[:-1], msgs[-1]["content"]))
        else:
            return [SFTExample(p.prompt, p.chosen) for p in load_pairs(path)]
    return out


def pack_rows(tokenized: list[tuple[list[int], list[int]]], max_length: int, packing: bool) -> list[list[Segment]]:
    """Greedy first-fit packing of (prompt_ids, completion_ids) into rows of <= max_length tokens.
    Every completion segment is scored as output sequence = its example index."""
    rows: list[list[Segment]] = []
    room: list[int] = []
    for i, (p, c) in enumerate(tokenized):
        c = c[: max_length - len(p)]
        segs = [Segment(p), Segment(c, parent=None, score_as=i)]
        n = len(p) + len(c)
        target = next((r for r, free in enumerate(room) if free >= n), None) if packing else None
        if target is None:
            rows.append([])
            room.append(max_length)
            target = len(rows) - 1
        segs[1].parent = len(rows[target])
        rows[target] += segs
        room[target] -= n
    return rows


class SFTTrainer:
    """setup (tokenize + pack) -> train (``loop.fit``) -> save."""

    name = "sft"
    supports_fsdp = True  # the model is called only inside loss/evaluate (loop.shard_model)

    def __init__(self, model, tokenizer, cfg: SFTConfig, out_dir: str | Path | None = None,
                 show_progress: bool | None = None):
        from rlhfkit.models.loading import resolve_dtype_name

        self.model, self.tokenizer, self.cfg = model, tokenizer, cfg.validate()
        if show_progress is not None:
            cfg.progress = show_progress
        self.out = Path(out_dir) if out_dir else None
        cfg.dtype = resolve_dtype_name(cfg.dtype)  # "auto" -> bf16 only where bf16 matmul is native
        self.dtype = torch.bfloat16 if cfg.dtype == "bf16" else torch.float32
        self.rows: list[list[Segment]] = []
        self.step = 0
        self.history: list[dict] = []
        loop.seed_everything(cfg.seed)

    def setup(self, examples: list[SFTExample]) -> "SFTTrainer":
        tokenized = []
        for ex in examples:
            group = tokenize_group(self.tokenizer, ex.prompt, [ex.completion], self.cfg.max_length)
            if group is not None:  # otherwise the prompt fills max_length: nothing left to learn from
                tokenized.append((group.prompt_ids, group.completion_ids[0]))
        if not tokenized:
            raise ValueError("no usable examples: every prompt fills max_length, or the data are empty")
        self.rows = pack_rows(tokenized, self.cfg.max_length, self.cfg.packing)
        return self

    def collate(self, rows: list[list[Segment]]):
        """A PackedBatch of these rows, completions numbered 0..n-1 in row order."""
        n, out = 0, []
        for row in rows:
            new = []
            for s in row:
                if s.score_as is not None:
                    new.append(Segment(s.ids, s.parent, n))
                    n += 1
                else:
                    new.append(s)
            out.append(new)
        return collate_rows(out, self.tokenizer.pad_token_id, n)

    # ---- the loop calls these
    def total_steps(self) -> int:
        return loop.steps_for(len(self.rows), self.cfg)[1]

    def batch_for_step(self, step: int) -> list[int]:
        per_epoch = loop.steps_for(len(self.rows), self.cfg)[0]
        epoch, k = divmod(step, per_epoch)
        g = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + epoch)
        order = torch.randperm(len(self.rows), generator=g).tolist()
        return order[k * self.cfg.global_batch : (k + 1) * self.cfg.global_batch]

    def micro_batches(self, indices: list[int]) -> list[tuple]:
        """Packed rows per micro-batch, weighted by their completion tokens: the step's loss is the
        mean NLL over all its completion tokens, however it is split."""
        bs = self.cfg.batch_size
        batches = [self.collate([self.rows[i] for i in indices[k : k + bs]]) for k in range(0, len(indices), bs)]
        return [(b, float(len(b.target_ids))) for b in batches]

    def loss(self, batch) -> tuple[torch.Tensor, dict]:
        _, per_token = completion_logps(self.model, batch, self.dtype, return_tokens=True)  # forward
        return -per_token.mean(), {}

    def train(self, stop_after: int | None = None) -> list[dict]:
        return loop.fit(self, self.out, stop_after, "sft")

    def save(self, out: str | Path | None = None) -> Path:
        folder = loop.save_hf_folder(self.model, self.tokenizer, Path(out) if out else self.out)
        loop.write_config(folder, "rlhfkit_sft_config.json", self.cfg)
        return folder
