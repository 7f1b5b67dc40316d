"""Reading items for import: our schema JSONL (via rlhfkit.data when present) with clear errors."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from rlhfkit.schema import PreferenceItem

MAX_TEXT_CHARS = 100_000  # prompt or response; longer is almost surely a broken export


class ItemsFileError(ValueError):
    def __init__(self, path: Path, line: int, message: str):
        super().__init__(f"{path}:{line}: {message}")
        self.path, self.line = path, line


def check_lengths(item: PreferenceItem) -> None:
    if len(item.prompt_text) > MAX_TEXT_CHARS:
        raise ValueError(f"prompt is longer than {MAX_TEXT_CHARS} characters")
    for n, r in enumerate(item.responses):
        if len(r.text) > MAX_TEXT_CHARS:
            raise ValueError(f"responses[{n}].text is longer than {MAX_TEXT_CHARS} characters")


def read_items_file(path: str | Path) -> list[tuple[PreferenceItem, str]]:
    """(item, "file:line") for every line of a JSONL file in our schema; errors name file and line."""
    path = Path(path)
    if not path.exists():
        raise ItemsFileError(path, 0, "file not found")
    out = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                item = PreferenceItem.model_validate_json(line)
                check_lengths(item)
            except ValidationError as e:
                err = e.errors()[0]
                where = ".".join(str(x) for x in err["loc"]) or "(record)"
                raise ItemsFileError(path, lineno, f"field {where}: {err['msg']}") from None
            except (ValueError, json.JSONDecodeError) as e:
                raise ItemsFileError(path, lineno, str(e)) from None
            out.append((item, f"{path.name}:{lineno}"))
    return out
