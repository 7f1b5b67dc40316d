"""Reading and writing preference data: our JSONL schema, TRL's key sets, Anthropic HH."""

from rlhfkit.data.atomic import atomic_dir, atomic_write
from rlhfkit.data.errors import DataError
from rlhfkit.data.formats import FORMATS, detect_format, item_to_records, record_to_item
from rlhfkit.data.io import ScanReport, convert, load_pairs, read_items, scan, write_items

__all__ = [
    "FORMATS",
    "DataError",
    "ScanReport",
    "atomic_dir",
    "atomic_write",
    "convert",
    "detect_format",
    "item_to_records",
    "load_pairs",
    "read_items",
    "record_to_item",
    "scan",
    "write_items",
]
