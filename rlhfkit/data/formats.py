"""Conversions between one JSON record of a supported format and a ``PreferenceItem``.

Supported formats (``FORMATS``):
- ``rlhfkit``: our schema, one ``PreferenceItem`` per line.
- ``trl-pairs``: ``{"prompt", "chosen", "rejected"}``, as text or conversational (lists of
  ``{"role", "content"}`` messages, the answers being one assistant message each).
- ``trl-implicit``: ``{"chosen", "rejected"}`` conversational, the prompt being the shared
  messages before the last assistant message.
- ``trl-unpaired``: ``{"prompt", "completion", "label"}`` (KTO), one response with a thumbs label.
- ``hh``: Anthropic HH transcripts ``{"chosen", "rejected"}`` with ``\\n\\nHuman:`` /
  ``\\n\\nAssistant:`` turns. The prompt is everything up to and including the last
  ``\\n\\nAssistant:`` marker, the response is the rest verbatim (its leading space included), so
  ``prompt + response`` reproduces the transcript byte for byte.

Every function raises ``DataError`` naming the field; the caller fills in file and line.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from rlhfkit.data.errors import DataError
from rlhfkit.schema import (
    Annotation,
    BinaryJudgement,
    Message,
    PairwiseJudgement,
    PreferenceItem,
    Response,
    item_to_pairs,
)

FORMATS = ("rlhfkit", "trl-pairs", "trl-implicit", "trl-unpaired", "hh")
HH_ASSISTANT = "\n\nAssistant:"
HH_HUMAN = "\n\nHuman:"


def detect_format(record: dict[str, Any]) -> str:
    """Guess a record's format from its keys (and, for chosen/rejected only, its content)."""
    keys = set(record)
    if "responses" in keys:
        return "rlhfkit"
    if {"prompt", "completion", "label"} <= keys:
        return "trl-unpaired"
    if {"prompt", "chosen", "rejected"} <= keys:
        return "trl-pairs"
    if {"chosen", "rejected"} <= keys:
        chosen = record["chosen"]
        if isinstance(chosen, str) and HH_HUMAN in chosen:
            return "hh"
        return "trl-implicit"
    raise DataError("", None, None, f"unrecognised record with keys {sorted(keys)}; expected one of "
                    "our schema (responses), prompt/chosen/rejected, chosen/rejected, "
                    "prompt/completion/label")


def record_to_item(record: Any, fmt: str) -> PreferenceItem:
    if not isinstance(record, dict):
        raise DataError("", None, None, f"expected a JSON object, got {type(record).__name__}")
    if fmt == "auto":
        fmt = detect_format(record)
    readers = {
        "rlhfkit": _read_ours,
        "trl-pairs": _read_trl_pairs,
        "trl-implicit": _read_trl_implicit,
        "trl-unpaired": _read_trl_unpaired,
        "hh": _read_hh,
    }
    if fmt not in readers:
        raise DataError("", None, None, f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    try:
        return readers[fmt](record)
    except KeyError as missing:
        raise DataError("", None, str(missing.args[0]), f"missing field (format {fmt})") from None


def item_to_records(item: PreferenceItem, fmt: str) -> list[dict[str, Any]]:
    """The records of ``fmt`` that express ``item``; a ranking of K gives several pairs."""
    if fmt == "rlhfkit":
        return [item.model_dump(mode="json", exclude_none=True)]
    if fmt == "trl-unpaired":
        return _write_unpaired(item)
    out = []
    for pair in item_to_pairs(item):
        if fmt == "hh":
            if not isinstance(pair.prompt, str):
                raise DataError("", None, "prompt", "the HH format needs a plain-text transcript prompt")
            out.append({"chosen": pair.prompt + pair.chosen, "rejected": pair.prompt + pair.rejected})
        elif fmt == "trl-pairs":
            if isinstance(pair.prompt, str):
                out.append({"prompt": pair.prompt, "chosen": pair.chosen, "rejected": pair.rejected})
            else:
                prompt = [m.model_dump() for m in pair.prompt]
                out.append({"prompt": prompt, "chosen": [_assistant(pair.chosen)],
                            "rejected": [_assistant(pair.rejected)]})
        elif fmt == "trl-implicit":
            prompt = _as_messages(pair.prompt)
            out.append({"chosen": prompt + [_assistant(pair.chosen)],
                        "rejected": prompt + [_assistant(pair.rejected)]})
        else:
            raise DataError("", None, None, f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    return out


# --- readers -------------------------------------------------------------------------------


def _read_ours(record: dict) -> PreferenceItem:
    try:
        return PreferenceItem.model_validate(record)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or None
        message = first["msg"].removeprefix("Value error, ")
        kind = "empty_response" if "response text is empty" in message else "malformed"
        raise DataError("", None, field, message, kind=kind) from None


def _pair_item(prompt, chosen: str, rejected: str, source_format: str) -> PreferenceItem:
    for field, text in (("chosen", chosen), ("rejected", rejected)):
        if not text.strip():
            raise DataError("", None, field, "the response is empty", kind="empty_response")
    return PreferenceItem(
        prompt=prompt,
        responses=[Response(text=chosen), Response(text=rejected)],
        annotations=[Annotation(judgement=PairwiseJudgement(a=0, b=1, choice="a"))],
        metadata={"source_format": source_format},
    )


def _read_trl_pairs(record: dict) -> PreferenceItem:
    prompt = record["prompt"]
    if isinstance(prompt, str):
        chosen = _require_str(record, "chosen")
        rejected = _require_str(record, "rejected")
        if not prompt.strip():
            raise DataError("", None, "prompt", "the prompt is empty")
        return _pair_item(prompt, chosen, rejected, "trl-pairs")
    messages = _messages(prompt, "prompt")
    chosen = _single_assistant(record["chosen"], "chosen")
    rejected = _single_assistant(record["rejected"], "rejected")
    return _pair_item(messages, chosen, rejected, "trl-pairs")


def _read_trl_implicit(record: dict) -> PreferenceItem:
    chosen = _messages(record["chosen"], "chosen")
    rejected = _messages(record["rejected"], "rejected")
    for field, msgs in (("chosen", chosen), ("rejected", rejected)):
        if msgs[-1].role != "assistant":
            raise DataError("", None, field, "the last message must be the assistant's answer")
    if chosen[:-1] != rejected[:-1]:
        raise DataError("", None, "rejected", "chosen and rejected differ before their last message",
                        kind="prefix_mismatch")
    if not chosen[:-1]:
        raise DataError("", None, "chosen", "no prompt messages before the answer")
    return _pair_item(chosen[:-1], chosen[-1].content, rejected[-1].content, "trl-implicit")


def _read_trl_unpaired(record: dict) -> PreferenceItem:
    label = record["label"]
    if not isinstance(label, bool):
        raise DataError("", None, "label", f"expected true or false, got {label!r}")
    prompt = record["prompt"]
    if isinstance(prompt, str):
        completion = _require_str(record, "completion")
    else:
        prompt = _messages(prompt, "prompt")
        completion = _single_assistant(record["completion"], "completion")
    if not completion.strip():
        raise DataError("", None, "completion", "the response is empty", kind="empty_response")
    return PreferenceItem(
        prompt=prompt,
        responses=[Response(text=completion)],
        annotations=[Annotation(judgement=BinaryJudgement(response=0, thumbs_up=label))],
        metadata={"source_format": "trl-unpaired"},
    )


def split_hh(transcript: str, field: str) -> tuple[str, str]:
    """(prompt up to and including the last Assistant marker, the final answer verbatim)."""
    cut = transcript.rfind(HH_ASSISTANT)
    if cut < 0:
        raise DataError("", None, field, "no '\\n\\nAssistant:' turn in the transcript")
    cut += len(HH_ASSISTANT)
    return transcript[:cut], transcript[cut:]


def _read_hh(record: dict) -> PreferenceItem:
    chosen = _require_str(record, "chosen")
    rejected = _require_str(record, "rejected")
    prompt_c, answer_c = split_hh(chosen, "chosen")
    prompt_r, answer_r = split_hh(rejected, "rejected")
    if prompt_c != prompt_r:
        raise DataError("", None, "rejected",
                        "the dialogue before the last Assistant turn differs from the chosen one",
                        kind="prefix_mismatch")
    return _pair_item(prompt_c, answer_c, answer_r, "hh")


# --- helpers -------------------------------------------------------------------------------


def _require_str(record: dict, field: str) -> str:
    value = record[field]
    if not isinstance(value, str):
        raise DataError("", None, field, f"expected a string, got {type(value).__name__}")
    return value


def _messages(value: Any, field: str) -> list[Message]:
    if not isinstance(value, list) or not value:
        raise DataError("", None, field, "expected a non-empty list of {role, content} messages")
    try:
        return [Message.model_validate(m) for m in value]
    except ValidationError as err:
        first = err.errors()[0]
        sub = ".".join(str(p) for p in first["loc"])
        raise DataError("", None, f"{field}.{sub}" if sub else field, first["msg"]) from None


def _single_assistant(value: Any, field: str) -> str:
    if isinstance(value, str):
        return value
    msgs = _messages(value, field)
    if len(msgs) != 1 or msgs[0].role != "assistant":
        raise DataError("", None, field, "expected exactly one assistant message")
    return msgs[0].content


def _assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


def _as_messages(prompt) -> list[dict]:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [m.model_dump() for m in prompt]


def _write_unpaired(item: PreferenceItem) -> list[dict]:
    out = []
    for ann in item.annotations:
        j = ann.judgement
        if j.kind != "binary":
            continue
        text = item.responses[j.response].text
        if isinstance(item.prompt, str):
            out.append({"prompt": item.prompt, "completion": text, "label": j.thumbs_up})
        else:
            out.append({"prompt": [m.model_dump() for m in item.prompt],
                        "completion": [_assistant(text)], "label": j.thumbs_up})
    return out
