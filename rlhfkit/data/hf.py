"""To and from ``datasets.Dataset``.

TRL formats become ordinary columns (what TRL's trainers read). Our own schema has nested,
mixed-type judgements that Arrow cannot hold in one column type, so a ``rlhfkit`` dataset keeps
each item as JSON text in an ``item`` column beside its ``id``.
"""

from __future__ import annotations

import itertools
import json
from typing import Iterable

from rlhfkit.data.errors import DataError
from rlhfkit.data.formats import item_to_records, record_to_item
from rlhfkit.schema import PreferenceItem


def check_one_prompt_kind(items: Iterable[PreferenceItem], lines: Iterable[int] | None = None,
                          path: str = "<items>") -> None:
    """Refuse items that mix plain-text and chat prompts, naming the first line of each kind.

    An Arrow column holds one type, so ``datasets`` cannot store both (it fails deep inside
    pyarrow). Turning text into a one-message chat, or flattening chat into text, would change
    what the model is trained on, so the choice is left to the user.
    """
    first: dict[str, int] = {}
    for n, item in zip(lines if lines is not None else itertools.count(1), items):
        first.setdefault("plain-text" if isinstance(item.prompt, str) else "chat", n)
    if len(first) == 2:
        unit = "line" if lines is not None else "item"
        raise DataError(path, None, "prompt", (
            f"the data mixes plain-text prompts (first at {unit} {first['plain-text']}) and chat prompts "
            f"(first at {unit} {first['chat']}); a datasets column holds one type. Split the file by prompt "
            "kind, or write JSONL (without --dataset), which can hold both"))


def items_to_dataset(items: Iterable[PreferenceItem], fmt: str = "trl-pairs",
                     lines: Iterable[int] | None = None, path: str = "<items>"):
    """A ``datasets.Dataset`` of ``items`` in ``fmt``; ``lines`` (the items' lines in ``path``)
    make errors point at the file."""
    import datasets

    items = list(items)
    if fmt != "rlhfkit":
        check_one_prompt_kind(items, list(lines) if lines is not None else None, path)
    if fmt == "rlhfkit":
        rows = [{"id": it.id, "item": it.model_dump_json(exclude_none=True)} for it in items]
        return datasets.Dataset.from_list(rows)
    records = [r for it in items for r in item_to_records(it, fmt)]
    return datasets.Dataset.from_list(records)


def dataset_to_items(dataset, fmt: str = "auto") -> list[PreferenceItem]:
    items = []
    for row_index, row in enumerate(dataset):
        try:
            if "item" in row and fmt in ("auto", "rlhfkit"):
                items.append(record_to_item(json.loads(row["item"]), "rlhfkit"))
            else:
                items.append(record_to_item(dict(row), fmt))
        except DataError as err:
            raise DataError("<dataset>", row_index + 1, err.field, err.message, kind=err.kind) from None
    return items
