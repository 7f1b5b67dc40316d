"""Reading items for import (via rlhfkit.data), with a length check; errors name file and line."""

from __future__ import annotations

from pathlib import Path

from rlhfkit.schema import PreferenceItem

MAX_TEXT_CHARS = 100_000  # prompt or response; longer is almost surely a broken export


class ItemsFileError(ValueError):
    def __init__(self, path: Path, line: int, message: str):
        super().__init__(f"{path}, line {line}: {message}")
        self.path, self.line = path, line


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


def read_items_file(path: str | Path, fmt: str = "auto") -> list[tuple[PreferenceItem, str]]:
    """(item, "file:line") for every record of a file in any format rlhfkit.data reads (our
    schema, TRL key sets, Anthropic HH). Problems raise ``rlhfkit.data.DataError`` or
    ``ItemsFileError``, both naming the file and line."""
    from rlhfkit.data import scan

    path = Path(path)
    out = []
    for lineno, item in scan(path, fmt, collect=False).items:
        try:
            check_lengths(item)
        except ValueError as e:
            raise ItemsFileError(path, lineno, str(e)) from None
        out.append((item, f"{path.name}:{lineno}"))
    return out
