"""Reading items for import (via rlhfkit.data), with a length check; errors name file and line.

Empty responses. Real exports contain responses that are an empty string (a model that stopped
at once). The schema refuses them, which is right for training data but wrong for an annotation
queue, so the importer lets the user choose (``EMPTY_POLICIES``):
  flag  import the item; the empty response is stored as it was ("" or whitespace), listed in
        ``metadata["empty_responses"]`` and shown to annotators as "(empty response)";
  skip  leave such items out, report their lines, import the rest.
Other problems (malformed records) still refuse the whole import, naming the line.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from rlhfkit.data import DataError, detect_format, record_to_item
from rlhfkit.data.io import iter_records
from rlhfkit.data.formats import HH_ASSISTANT
from rlhfkit.schema import PreferenceItem, Response

MAX_TEXT_CHARS = 100_000  # prompt or response; longer is almost surely a broken export
EMPTY_POLICIES = ("flag", "skip")
EMPTY_LABEL = "(empty response)"
# Stands in for an empty answer while the schema validates the item; never stored.
_SENTINEL = "\u2063rlhfkit-empty-response\u2063"
_item_adapter: TypeAdapter = TypeAdapter(PreferenceItem)


class ItemsFileError(ValueError):
    def __init__(self, path: Path, line: int, message: str):
        super().__init__(f"{path}, line {line}: {message}")
        self.path, self.line = path, line


@dataclass
class ReadItems:
    """Items to import as (item, "file:line"), and the lines left out with the reason."""

    items: list[tuple[PreferenceItem, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def check_lengths(item: PreferenceItem) -> None:
    if len(item.id) > 200:  # items.external_id is VARCHAR(200); PostgreSQL would refuse it late
        raise ValueError("id is longer than 200 characters")
    if len(item.prompt_text) > MAX_TEXT_CHARS:
        raise ValueError(f"prompt is longer than {MAX_TEXT_CHARS} characters")
    if "\x00" in item.id or "\x00" in item.prompt_text or any("\x00" in r.text for r in item.responses):
        raise ValueError("text must not contain NUL characters (PostgreSQL cannot store them)")
    for n, r in enumerate(item.responses):
        if len(r.text) > MAX_TEXT_CHARS:
            raise ValueError(f"responses[{n}].text is longer than {MAX_TEXT_CHARS} characters")


def _blank(value: Any) -> bool:
    return isinstance(value, str) and not value.strip()


def _fill_answer(value: Any) -> Any:
    """An answer field (a string or a list of messages ending in the answer) with a blank answer
    replaced by the sentinel."""
    if _blank(value):
        return value + _SENTINEL
    if isinstance(value, list) and value and isinstance(value[-1], dict) and _blank(value[-1].get("content")):
        value[-1]["content"] += _SENTINEL
    return value


def _fill_empty(record: dict, fmt: str) -> dict:
    """A copy of ``record`` whose empty responses carry the sentinel (so the schema accepts it)."""
    record = copy.deepcopy(record)
    if fmt == "rlhfkit":
        for r in record.get("responses") or []:
            if isinstance(r, dict) and _blank(r.get("text")):
                r["text"] += _SENTINEL
    elif fmt in ("trl-pairs", "trl-implicit"):
        for key in ("chosen", "rejected"):
            if key in record:
                record[key] = _fill_answer(record[key])
    elif fmt == "trl-unpaired":
        if "completion" in record:
            record["completion"] = _fill_answer(record["completion"])
    elif fmt == "hh":
        for key in ("chosen", "rejected"):
            text = record.get(key)
            if isinstance(text, str) and HH_ASSISTANT in text and not text[text.rfind(HH_ASSISTANT) + len(HH_ASSISTANT):].strip():
                record[key] = text + _SENTINEL
    return record


def _restore_empty(item: PreferenceItem) -> PreferenceItem:
    """Put the original blank text back where the sentinel stands and flag those responses."""
    flagged = []
    for n, r in enumerate(item.responses):
        if r.text.endswith(_SENTINEL):
            # model_construct: the schema refuses empty text, and this item is flagged on purpose.
            item.responses[n] = Response.model_construct(id=r.id, text=r.text[: -len(_SENTINEL)],
                                                         provenance=r.provenance)
            flagged.append(n)
    if flagged:
        item.metadata["empty_responses"] = flagged
    return item


def parse_record(record: Any, fmt: str = "auto", empty: str = "flag") -> PreferenceItem:
    """One record of any supported format as an item. Raises ``DataError`` (kind
    "empty_response" when only an empty response is wrong and ``empty`` is "skip")."""
    if empty not in EMPTY_POLICIES:
        raise ValueError(f"empty responses: choose one of {EMPTY_POLICIES}, not {empty!r}")
    if not isinstance(record, dict):
        raise DataError("", None, None, f"expected a JSON object, got {type(record).__name__}")
    fmt = detect_format(record) if fmt == "auto" else fmt
    try:
        return _convert(record, fmt)
    except DataError as err:
        if err.kind != "empty_response" or empty == "skip":
            raise
    return _restore_empty(_convert(_fill_empty(record, fmt), fmt))


def _convert(record: dict, fmt: str) -> PreferenceItem:
    if fmt != "rlhfkit":
        return record_to_item(record, fmt)
    # Our own format from the API or a file: strict (no "0" for an index, no true for 1), from
    # JSON text so that timestamps in ISO strings stay valid in strict mode.
    try:
        return _item_adapter.validate_json(json.dumps(record), strict=True)
    except ValidationError as err:
        first = err.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        kind = "empty_response" if "response text is empty" in message else "malformed"
        raise DataError("", None, ".".join(str(p) for p in first["loc"]) or None, message, kind=kind) from None


def parse_records(records: list[Any], empty: str = "flag", where: str = "items") -> ReadItems:
    """API import: ``where[n]`` names a bad record; empty responses handled by ``empty``."""
    out = ReadItems()
    for n, record in enumerate(records):
        try:
            item = parse_record(record, "rlhfkit", empty)
            check_lengths(item)
        except DataError as err:
            what = f"{where}[{n}]" + (f".{err.field}" if err.field else "")
            if err.kind == "empty_response":
                out.skipped.append(f"{what}: {err.message}")
                continue
            raise ValueError(f"{what}: {err.message}") from None
        except ValueError as err:
            raise ValueError(f"{where}[{n}]: {err}") from None
        out.items.append((item, n))
    return out


def read_items_file(path: str | Path, fmt: str = "auto", empty: str = "flag") -> ReadItems:
    """(item, "file:line") for every record of a file in any format rlhfkit.data reads (our
    schema, TRL key sets, Anthropic HH). Problems raise ``rlhfkit.data.DataError`` or
    ``ItemsFileError``, both naming the file and line; with ``empty="skip"`` items with an empty
    response are left out and their lines listed in ``skipped``."""
    path = Path(path)
    out = ReadItems()
    for lineno, record in iter_records(path):
        try:
            if fmt == "auto" and isinstance(record, dict):
                fmt = detect_format(record)  # the first record decides, as rlhfkit.data does
            item = parse_record(record, fmt, empty)
            check_lengths(item)
        except DataError as err:
            located = DataError(path, lineno, err.field, err.message, kind=err.kind)
            if err.kind == "empty_response":
                out.skipped.append(str(located))
                continue
            raise located from None
        except ValueError as e:
            raise ItemsFileError(path, lineno, str(e)) from None
        out.items.append((item, f"{path.name}:{lineno}"))
    return out
