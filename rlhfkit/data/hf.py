"""To and from ``datasets.Dataset``.

TRL formats become ordinary columns (what TRL's trainers read). Our own schema has nested,
mixed-type judgements that Arrow cannot hold in one column type, so a ``rlhfkit`` dataset keeps
each item as JSON text in an ``item`` column beside its ``id``.
"""

from __future__ import annotations

import json
from typing import Iterable

from rlhfkit.data.errors import DataError
from rlhfkit.data.formats import item_to_records, record_to_item
from rlhfkit.schema import PreferenceItem


def items_to_dataset(items: Iterable[PreferenceItem], fmt: str = "trl-pairs"):
    import datasets

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
