"""Language feedback as training data: critiques and edits out of annotated items.

Three shapes, one record per line (JSON), each with provenance (item id, annotator, source,
response index, annotation id):

- SFT examples ``{"prompt", "completion"}``: the completion is an annotator's edit of a
  response, so ``rlhfkit sft`` trains on it directly.
- Edit pairs ``{"prompt", "chosen", "rejected", "pair_kind": "edit"}``: the edit is preferred
  to the response it rewrote (edited > original), marked so a trainer or an audit can tell
  these from ranking pairs; ``rlhfkit dpo`` reads them like any prompt/chosen/rejected file.
- ILF triples ``{"prompt", "response", "critique", "critique_sha256"}``: the input of
  ``rlhfkit ilf`` (imitation learning from language feedback, Scheurer et al. 2023).

A triple's identity is ``critique_sha256``: the SHA-256 of the canonical JSON of
``{"critique", "prompt", "response"}`` (keys sorted, no spaces, non-ASCII escaped as
``json.dumps`` does by default: the same form as the loop's ``rounds.content_hash``; chat
prompts as ``{"role", "content"}`` lists), so the same critique of the same answer has the same hash in
every export and a run's lineage names exactly the critiques it learnt from. An edit's hash is
the same construction over ``{"completion", "prompt"}``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from rlhfkit.data.errors import DataError
from rlhfkit.schema import Message, PreferenceItem


def _plain_prompt(prompt: Any) -> Any:
    if isinstance(prompt, str):
        return prompt
    return [m.model_dump() if isinstance(m, Message) else {"role": m["role"], "content": m["content"]}
            for m in prompt]


def content_sha256(record: dict[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of ``record`` (sorted keys, compact, ASCII-escaped)."""
    return hashlib.sha256(json.dumps(record, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def critique_sha256(prompt: Any, response: str, critique: str) -> str:
    return content_sha256({"prompt": _plain_prompt(prompt), "response": response, "critique": critique})


def edit_sha256(prompt: Any, completion: str) -> str:
    return content_sha256({"prompt": _plain_prompt(prompt), "completion": completion})


def _provenance(item: PreferenceItem, ann, index: int) -> dict[str, Any]:
    return {"item_id": item.id, "annotation_id": ann.id, "annotator": ann.annotator_id, "source": ann.source,
            "response_index": index, "created_at": ann.created_at.isoformat() if ann.created_at else None}


def ilf_triples(items: Iterable[PreferenceItem]) -> list[dict[str, Any]]:
    """One (prompt, response, critique) record per response critique."""
    out = []
    for item in items:
        prompt = _plain_prompt(item.prompt)
        for ann in item.annotations:
            for c in ann.response_critiques or []:
                response = item.responses[c.response].text
                out.append({"prompt": prompt, "response": response, "critique": c.text,
                            "critique_sha256": critique_sha256(prompt, response, c.text),
                            **_provenance(item, ann, c.response)})
    return out


def _edits(items: Iterable[PreferenceItem]):
    for item in items:
        for ann in item.annotations:
            if ann.edit is not None:
                yield item, ann, _plain_prompt(item.prompt)


def edit_examples(items: Iterable[PreferenceItem]) -> list[dict[str, Any]]:
    """One SFT example (prompt, edited response) per edit."""
    return [{"prompt": prompt, "completion": ann.edit.text, "edit_sha256": edit_sha256(prompt, ann.edit.text),
             **_provenance(item, ann, ann.edit.response)} for item, ann, prompt in _edits(items)]


def edit_pairs(items: Iterable[PreferenceItem]) -> list[dict[str, Any]]:
    """One preference pair per edit: the edit (chosen) over the response it rewrote (rejected)."""
    return [{"prompt": prompt, "chosen": ann.edit.text, "rejected": item.responses[ann.edit.response].text,
             "pair_kind": "edit", "weight": ann.weight, **_provenance(item, ann, ann.edit.response)}
            for item, ann, prompt in _edits(items)]


@dataclass(frozen=True)
class CritiqueTriple:
    prompt: str | list[dict]
    response: str
    critique: str
    sha256: str


def _text_field(path, lineno, record: dict, name: str) -> str:
    value = record.get(name)
    if not isinstance(value, str) or not value.strip():
        raise DataError(path, lineno, name, "expected a non-empty string")
    return value


def read_ilf_triples(path: str | Path) -> list[CritiqueTriple]:
    """Triples from a JSONL file (``rlhfkit feedback export --format ilf``); a stated
    ``critique_sha256`` must match the content, so an edited file cannot pass as the export."""
    from rlhfkit.data.io import iter_records

    out = []
    for lineno, record in iter_records(path):
        if not isinstance(record, dict):
            raise DataError(path, lineno, None, "expected a JSON object with prompt, response, critique")
        prompt = record.get("prompt")
        if isinstance(prompt, list):
            if not prompt or not all(isinstance(m, dict) and {"role", "content"} <= set(m) for m in prompt):
                raise DataError(path, lineno, "prompt", "expected {role, content} messages")
            prompt = [{"role": m["role"], "content": m["content"]} for m in prompt]
        elif not isinstance(prompt, str) or not prompt.strip():
            raise DataError(path, lineno, "prompt", "expected a non-empty string or a list of messages")
        response, critique = _text_field(path, lineno, record, "response"), _text_field(path, lineno, record, "critique")
        digest = critique_sha256(prompt, response, critique)
        stated = record.get("critique_sha256")
        if stated is not None and stated != digest:
            raise DataError(path, lineno, "critique_sha256",
                            f"does not match the content (computed {digest[:12]}...): the record was changed")
        out.append(CritiqueTriple(prompt, response, critique, digest))
    if not out:
        raise DataError(path, None, None, "no critiques in the file")
    return out
