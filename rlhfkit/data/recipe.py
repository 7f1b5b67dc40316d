"""Reading recipe YAML files: a mapping of option: value, with errors that name the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def read_recipe(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    import yaml

    from rlhfkit.data.errors import DataError

    if not Path(path).exists():
        raise DataError(path, None, None, "no such recipe file")
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise DataError(path, 1, None, "a recipe must be a YAML mapping of option: value")
    return data
