"""Prompt handling shared by generation and training: reading prompt sets and chat formatting."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from rlhfkit.data.errors import DataError
from rlhfkit.schema import Message

_HH_TURN = re.compile(r"\n\n(Human|Assistant):")


@dataclass
class PromptRecord:
    id: str
    prompt: str | list[Message]


def hh_to_messages(transcript: str) -> list[Message]:
    """Split an Anthropic HH transcript into chat messages (a trailing empty Assistant turn,
    the generation slot, is dropped)."""
    parts = _HH_TURN.split(transcript)
    messages = []
    for role, text in zip(parts[1::2], parts[2::2]):
        messages.append(Message(role="user" if role == "Human" else "assistant", content=text.strip()))
    if messages and messages[-1].role == "assistant" and not messages[-1].content:
        messages.pop()
    return messages


def prompt_to_messages(prompt: str | list[Message]) -> list[Message]:
    """Chat messages for any prompt: messages as they are, HH transcripts split into turns,
    plain text as one user message."""
    if not isinstance(prompt, str):
        return list(prompt)
    if _HH_TURN.search(prompt):
        return hh_to_messages(prompt)
    return [Message(role="user", content=prompt)]


def render_prompt(tokenizer, prompt: str | list[Message]) -> str:
    """The text a policy continues: the chat template with the assistant slot opened when the
    tokenizer has one, else the raw prompt."""
    if getattr(tokenizer, "chat_template", None):
        messages = [m.model_dump() for m in prompt_to_messages(prompt)]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return prompt if isinstance(prompt, str) else "\n".join(m.content for m in prompt)


def read_prompts(path: str | Path) -> list[PromptRecord]:
    """Prompts from a .txt file (one a line), a JSONL of ``{"prompt": ..., "id"?: ...}``, or any
    preference data file (its items' prompts, de-duplicated)."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, None, None, "no such file")
    if path.suffix == ".txt":
        lines = path.read_text(encoding="utf-8").splitlines()
        return [PromptRecord(f"p{n}", line) for n, line in enumerate(lines, 1) if line.strip()]
    with path.open(encoding="utf-8") as fh:
        first = next((line for line in fh if line.strip()), None)
    if first is None:
        raise DataError(path, None, None, "the file holds no prompts")
    try:
        keys = set(json.loads(first))
    except (json.JSONDecodeError, TypeError):
        raise DataError(path, 1, None, "expected JSONL records (or a .txt file, one prompt a line)") from None
    if "prompt" in keys and not keys & {"chosen", "responses", "completion"}:
        return _read_prompt_jsonl(path)
    from rlhfkit.data.io import read_items

    seen: dict[str, PromptRecord] = {}
    for item in read_items(path, strict=False):
        key = item.prompt_text
        seen.setdefault(key, PromptRecord(item.id, item.prompt))
    return list(seen.values())


def _read_prompt_jsonl(path: Path) -> list[PromptRecord]:
    out = []
    for lineno, line in enumerate(path.open(encoding="utf-8"), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(path, lineno, None, f"invalid JSON: {err.msg}") from None
        prompt = rec.get("prompt")
        if isinstance(prompt, list):
            try:
                prompt = [Message.model_validate(m) for m in prompt]
            except Exception:
                raise DataError(path, lineno, "prompt", "expected {role, content} messages") from None
        elif not isinstance(prompt, str) or not prompt.strip():
            raise DataError(path, lineno, "prompt", "expected a non-empty string or a list of messages")
        out.append(PromptRecord(str(rec.get("id", f"p{lineno}")), prompt))
    return out
