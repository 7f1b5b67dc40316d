"""Reading and writing preference data files (JSONL or a JSON array), in any supported format."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from rlhfkit.data.atomic import atomic_write
from rlhfkit.data.errors import DataError
from rlhfkit.data.formats import FORMATS, detect_format, item_to_records, record_to_item
from rlhfkit.schema import PreferenceItem, PreferencePair, item_to_pairs

log = logging.getLogger(__name__)


@dataclass
class ScanReport:
    """Everything read from one file: the good items (with their line) and every problem found."""

    path: str
    format: str | None = None
    items: list[tuple[int, PreferenceItem]] = field(default_factory=list)
    errors: list[DataError] = field(default_factory=list)

    @property
    def skipped(self) -> list[DataError]:
        return [e for e in self.errors if e.skippable]

    @property
    def fatal(self) -> list[DataError]:
        return [e for e in self.errors if not e.skippable]


def iter_records(path: str | Path) -> Iterator[tuple[int, Any]]:
    """(1-based line, parsed JSON) for a JSONL file; a ``.json`` file may hold one JSON array."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, None, None, "no such file")
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise DataError(path, err.lineno, None, f"invalid JSON: {err.msg}") from None
        if not isinstance(data, list):
            raise DataError(path, 1, None, "a .json data file must hold a JSON array of records")
        # Records of a JSON array are numbered by position (1-based), not by text line.
        yield from enumerate(data, start=1)
        return
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(path, lineno, None, f"invalid JSON: {err.msg} (column {err.colno})") from None


def scan(path: str | Path, fmt: str = "auto", collect: bool = True) -> ScanReport:
    """Parse every record; with ``collect`` keep going past problems and list them all."""
    report = ScanReport(path=str(path))
    try:
        records = iter_records(path)
        for lineno, record in records:
            try:
                if report.format is None:
                    report.format = fmt if fmt != "auto" else detect_format(_as_dict(record))
                report.items.append((lineno, record_to_item(record, report.format)))
            except DataError as err:
                located = DataError(path, lineno, err.field, err.message, kind=err.kind)
                if not collect:
                    raise located from None
                report.errors.append(located)
    except DataError as err:  # unreadable file or bad JSON: nothing after it can be trusted
        if not collect:
            raise
        report.errors.append(err)
    return report


def _as_dict(record: Any) -> dict:
    if not isinstance(record, dict):
        raise DataError("", None, None, f"expected a JSON object, got {type(record).__name__}")
    return record


def read_items(path: str | Path, fmt: str = "auto", strict: bool = True) -> list[PreferenceItem]:
    """All items of a file. Strict: the first problem raises. Otherwise content flaws (empty
    answers, mismatched HH prefixes) are skipped with a counted warning; malformed records
    still raise, since they mean the file is not what the caller thinks it is."""
    return [item for _, item in read_lined_items(path, fmt, strict)]


def read_lined_items(path: str | Path, fmt: str = "auto", strict: bool = True) -> list[tuple[int, PreferenceItem]]:
    """``read_items`` with each item's 1-based line (record number in a .json array)."""
    report = scan(path, fmt, collect=not strict)
    if report.fatal:
        raise report.fatal[0]
    if report.skipped:
        kinds: dict[str, int] = {}
        for e in report.skipped:
            kinds[e.kind] = kinds.get(e.kind, 0) + 1
        summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        lines = ", ".join(str(e.line) for e in report.skipped[:10])
        log.warning("%s: skipped %d flawed records (%s) at lines %s; use --strict to refuse them",
                    path, len(report.skipped), summary, lines)
    return report.items


def load_pairs(path: str | Path, fmt: str = "auto", strict: bool = False) -> list[PreferencePair]:
    """(prompt, chosen, rejected) pairs for training, from any supported format."""
    pairs: list[PreferencePair] = []
    for item in read_items(path, fmt, strict=strict):
        pairs.extend(item_to_pairs(item))
    return pairs


def write_items(path: str | Path, items: Iterable[PreferenceItem], fmt: str = "rlhfkit") -> int:
    """Write items as JSONL in ``fmt`` atomically; returns the number of records written."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    n = 0
    with atomic_write(path) as fh:
        for item in items:
            for record in item_to_records(item, fmt):
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
                n += 1
    return n


def convert(src: str | Path, dst: str | Path, to: str, fmt: str = "auto", strict: bool = True) -> int:
    """Read ``src`` in any format and write ``dst`` in ``to``; returns records written."""
    return write_items(dst, read_items(src, fmt, strict=strict), fmt=to)
