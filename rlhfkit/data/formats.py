"""Conversions between one JSON record of a supported format and a ``PreferenceItem``.

Supported formats (``FORMATS``):
- ``rlhfkit``: our schema, one ``PreferenceItem`` per line.
- ``trl-pairs``: ``{"prompt", "chosen", "rejected"}``, as text or conversational (lists of
  ``{"role", "content"}`` messages, the answers being one assistant message each).
- ``trl-implicit``: ``{"chosen", "rejected"}`` conversational, the prompt being the shared
  messages before the last assistant message.
- ``trl-unpaired``: ``{"prompt", "completion", "label"}`` (KTO), one response with a thumbs label.
- ``labelstudio``: a Label Studio task (its JSON export is an array of them) as its "Human
  Preferences collection for RLHF" template makes them: ``data`` {prompt, answer1, answer2} and
  ``annotations`` whose ``result`` holds a ``pairwise`` control's ``{"selected": "left" | "right"}``
  (left is the first name in ``to_name``, else answer1). Cancelled annotations are left out.
  Written one task per pair of responses (Label Studio's pairwise control compares two); ties
  and "both bad" have no Label Studio value and are not written.
- ``argilla``: an Argilla feedback record ``{"fields": {prompt, response-1, response-2, ...},
  "responses": [{"user_id", "values": {QUESTION: {"value": [{"value": "response-1", "rank": 1},
  ...]}}, "status"}]}`` with a ranking question (equal ranks tie; a plain list of option names,
  best first, is read too). Only "submitted" responses are read.
- ``hh``: Anthropic HH transcripts ``{"chosen", "rejected"}`` with ``\\n\\nHuman:`` /
  ``\\n\\nAssistant:`` turns. The prompt is everything up to and including the last
  ``\\n\\nAssistant:`` marker, the response is the rest verbatim (its leading space included), so
  ``prompt + response`` reproduces the transcript byte for byte.

Every function raises ``DataError`` naming the field; the caller fills in file and line.
"""

from __future__ import annotations

import re
from datetime import datetime
from itertools import combinations
from typing import Any

from pydantic import ValidationError

from rlhfkit.data.errors import DataError
from rlhfkit.schema import (
    Annotation,
    BinaryJudgement,
    Message,
    PairwiseJudgement,
    PreferenceItem,
    RankingJudgement,
    Response,
    item_to_pairs,
    judgement_to_pairs,
)

FORMATS = ("rlhfkit", "trl-pairs", "trl-implicit", "trl-unpaired", "hh", "labelstudio", "argilla")
HH_ASSISTANT = "\n\nAssistant:"
HH_HUMAN = "\n\nHuman:"


def detect_format(record: dict[str, Any]) -> str:
    """Guess a record's format from its keys (and, for chosen/rejected only, its content)."""
    keys = set(record)
    if "fields" in keys and isinstance(record.get("fields"), dict):
        return "argilla"
    if "data" in keys and isinstance(record.get("data"), dict):
        return "labelstudio"
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
                    "prompt/completion/label, a Label Studio task (data) or an Argilla record (fields)")


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
        "labelstudio": _read_labelstudio,
        "argilla": _read_argilla,
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
    if fmt == "labelstudio":
        return _write_labelstudio(item)
    if fmt == "argilla":
        return _write_argilla(item)
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


# --- annotation tools: Label Studio, Argilla ----------------------------------------------------

_PROMPT_KEYS = ("prompt", "instruction", "question", "text")
_ANSWER_KEY = re.compile(r"^(answer|response|reply|completion)[-_ ]?(\d+)$")


def _tool_prompt(fields: dict, where: str) -> str:
    for key in _PROMPT_KEYS:
        if isinstance(fields.get(key), str) and fields[key].strip():
            return fields[key]
    raise DataError("", None, where, f"no prompt: expected one of {', '.join(_PROMPT_KEYS)}")


def _tool_answers(fields: dict, where: str) -> list[str]:
    """Answer field names in numeric order (answer1, answer2 / response-1, response-2, ...)."""
    named = sorted((int(m.group(2)), key) for key in fields if (m := _ANSWER_KEY.match(key)))
    if len(named) < 2:
        raise DataError("", None, where, "expected at least two answers (answer1, answer2 / response-1, response-2)")
    return [key for _, key in named]


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _labelstudio_user(completed_by: Any) -> str:
    if isinstance(completed_by, dict):
        return str(completed_by.get("email") or completed_by.get("id"))
    return f"labelstudio-user-{completed_by}"


def _read_labelstudio(record: dict) -> PreferenceItem:
    data = record["data"]
    prompt, keys = _tool_prompt(data, "data.prompt"), _tool_answers(data, "data")
    item_id = str(data.get("item_id") or f"ls-{record.get('id')}")
    annotations = []
    for n, ann in enumerate(record.get("annotations") or []):
        if ann.get("was_cancelled"):
            continue
        for res in ann.get("result") or []:
            if res.get("type") != "pairwise":
                continue
            selected = (res.get("value") or {}).get("selected")
            names = [x.strip() for x in str(res.get("to_name", "")).split(",")]
            left, right = names if len(names) == 2 and all(x in keys for x in names) else keys[:2]
            if selected not in ("left", "right"):
                raise DataError("", None, f"annotations[{n}].result.value.selected",
                                f"expected 'left' or 'right', got {selected!r}")
            # rlhfkit's own export names the annotator in meta (Label Studio user ids are local numbers)
            who = (ann.get("meta") or {}).get("annotator") or _labelstudio_user(ann.get("completed_by"))
            annotations.append(Annotation(
                id=f"ls-{ann['id']}" if "id" in ann else f"{item_id}-{n}", annotator_id=who,
                judgement=PairwiseJudgement(a=keys.index(left), b=keys.index(right),
                                            choice="a" if selected == "left" else "b"),
                time_spent_s=ann.get("lead_time"), created_at=_when(ann.get("created_at"))))
    return _validated(lambda: PreferenceItem(
        id=item_id, prompt=prompt, responses=[Response(text=data[k]) for k in keys], annotations=annotations,
        metadata={"source_format": "labelstudio", **({"labelstudio_task": record["id"]} if "id" in record else {})}))


def _ranking_tiers(value: Any, keys: list[str], where: str) -> list[list[int]] | None:
    """Tiers from an Argilla ranking value ({value, rank} dicts or option names best first)."""
    if not isinstance(value, list) or not value:
        return None
    if all(isinstance(v, str) for v in value):
        ranked = [(n, v) for n, v in enumerate(value)]
    elif all(isinstance(v, dict) and "value" in v and "rank" in v for v in value):
        ranked = [(v["rank"], v["value"]) for v in value]
    else:
        return None
    tiers: dict[Any, list[int]] = {}
    for rank, name in ranked:
        if name not in keys:
            raise DataError("", None, where, f"ranks {name!r}, which is not one of the answers {keys}")
        tiers.setdefault(rank, []).append(keys.index(name))
    return [sorted(tiers[r]) for r in sorted(tiers)]


def _read_argilla(record: dict) -> PreferenceItem:
    fields = record["fields"]
    prompt, keys = _tool_prompt(fields, "fields.prompt"), _tool_answers(fields, "fields")
    annotations = []
    for n, resp in enumerate(record.get("responses") or []):
        if resp.get("status", "submitted") != "submitted":
            continue
        for question, answer in (resp.get("values") or {}).items():
            value = answer.get("value") if isinstance(answer, dict) else answer
            tiers = _ranking_tiers(value, keys, f"responses[{n}].values.{question}")
            if tiers is not None:
                annotations.append(Annotation(
                    id=f"argilla-{record.get('id', record.get('external_id', ''))}-{n}",
                    annotator_id=str(resp.get("user_id")), judgement=RankingJudgement(tiers=tiers),
                    created_at=_when(resp.get("updated_at") or resp.get("inserted_at"))))
                break
    item_id = str(record.get("external_id") or record.get("id") or "")
    return _validated(lambda: PreferenceItem(
        **({"id": item_id} if item_id else {}), prompt=prompt, responses=[Response(text=fields[k]) for k in keys],
        annotations=annotations, metadata={"source_format": "argilla"}))


def _validated(build) -> PreferenceItem:
    try:
        return build()
    except ValidationError as err:
        first = err.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        kind = "empty_response" if "response text is empty" in message else "malformed"
        raise DataError("", None, ".".join(str(p) for p in first["loc"]) or None, message, kind=kind) from None


def _pair_preferences(item: PreferenceItem) -> dict[tuple[int, int], list[tuple[Annotation, int]]]:
    """(i, j) with i < j -> [(annotation, winner)] for every strict preference an annotation states."""
    out: dict[tuple[int, int], list[tuple[Annotation, int]]] = {}
    for ann in item.annotations:
        for chosen, rejected in judgement_to_pairs(ann.judgement):
            out.setdefault((min(chosen, rejected), max(chosen, rejected)), []).append((ann, chosen))
    return out


def _write_labelstudio(item: PreferenceItem) -> list[dict]:
    prompt = item.prompt_text
    tasks = []
    for i, j in combinations(range(len(item.responses)), 2):
        prefs = _pair_preferences(item).get((i, j), [])
        annotations = [{
            "result": [{"from_name": "comparison", "to_name": "answer1,answer2", "type": "pairwise",
                        "value": {"selected": "left" if winner == i else "right"}}],
            "was_cancelled": False, "lead_time": ann.time_spent_s,
            "created_at": ann.created_at.isoformat() if ann.created_at else None,
            "meta": {"annotator": ann.annotator_id, "source": ann.source},
        } for ann, winner in prefs]
        pair_id = item.id if len(item.responses) == 2 else f"{item.id}:{i}-{j}"
        tasks.append({"data": {"prompt": prompt, "answer1": item.responses[i].text,
                               "answer2": item.responses[j].text, "item_id": pair_id},
                      "annotations": annotations})
    return tasks


def _write_argilla(item: PreferenceItem) -> list[dict]:
    names = [f"response-{n + 1}" for n in range(len(item.responses))]
    responses = []
    for ann in item.annotations:
        j = ann.judgement
        if j.kind == "pairwise" and len(names) == 2 and j.choice in ("a", "b", "tie"):
            winner = j.a if j.choice == "a" else j.b
            tiers = [[0, 1]] if j.choice == "tie" else [[winner], [1 - winner]]
        elif j.kind == "ranking":
            tiers = j.tiers
        else:
            continue  # Argilla's ranking question ranks every answer; this judgement does not
        responses.append({"user_id": ann.annotator_id, "status": "submitted",
                          "values": {"preference": {"value": [
                              {"value": names[i], "rank": rank + 1} for rank, tier in enumerate(tiers) for i in tier]}}})
    return [{"external_id": item.id, "fields": {"prompt": item.prompt_text,
                                                **{n: r.text for n, r in zip(names, item.responses)}},
             "metadata": {}, "responses": responses}]
