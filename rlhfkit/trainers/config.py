"""Trainer configs from defaults < recipe YAML < command-line flags (TRL's TrlParser order).

A config is a dataclass whose fields carry ``metadata={"help": ...}``; the same field names are
the YAML keys and the CLI flags. Unknown YAML keys are refused with the file and key named, since
a typo would otherwise silently train with the default.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    pass


def load_recipe(path: str | Path) -> dict[str, Any]:
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: recipe file not found") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a recipe must be a mapping of field: value")
    return data


def build_config(cls: type[T], recipe: str | Path | None = None, **cli: Any) -> T:
    """``cls`` from its defaults, then the recipe's keys, then CLI values that are not None."""
    names = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    if recipe is not None:
        data = load_recipe(recipe)
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"{recipe}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        values.update(data)
    for key, value in cli.items():
        if key not in names:
            raise ConfigError(f"unknown option {key!r}")
        if value is not None:
            values[key] = value
    return cls(**values)


def config_help(cls) -> dict[str, str]:
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}
