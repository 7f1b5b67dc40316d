"""Errors about preference data that point at the exact place in the file."""

from __future__ import annotations

from pathlib import Path

# Flaws of content rather than structure: real data sets have a few, so training may skip
# them with a counted warning instead of refusing the whole file.
SKIPPABLE_KINDS = frozenset({"empty_response", "prefix_mismatch"})


class DataError(ValueError):
    """Bad input: names the file, the 1-based line and the field that is wrong.

    ``kind`` is "malformed" for structural problems (bad JSON, missing field, wrong type, fewer
    than two responses) and one of ``SKIPPABLE_KINDS`` for content flaws.
    """

    def __init__(
        self,
        path: str | Path,
        line: int | None,
        field: str | None,
        message: str,
        kind: str = "malformed",
    ):
        self.path = str(path)
        self.line = line
        self.field = field
        self.message = message
        self.kind = kind
        where = self.path + (f", line {line}" if line is not None else "")
        what = f"field '{field}': " if field else ""
        super().__init__(f"{where}: {what}{message}")

    @property
    def skippable(self) -> bool:
        return self.kind in SKIPPABLE_KINDS
