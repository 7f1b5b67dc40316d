"""Recipe YAML + CLI flags -> a trainer config, with precedence defaults < YAML < CLI.

A recipe is a flat YAML mapping: run keys (model, data, out, ...) plus any field of the
trainer's config dataclass. Unknown keys are refused (a typo would otherwise be silently
ignored). Relative paths in a recipe are taken relative to the current directory.
"""

from __future__ import annotations

from dataclasses import fields
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


def merge(config_cls, run_defaults: dict[str, Any], recipe: dict[str, Any], cli: dict[str, Any],
          recipe_path: Path | None = None):
    """(config instance, run options): defaults, then recipe values, then CLI values that were given."""
    from rlhfkit.data.errors import DataError

    cfg_fields = {f.name for f in fields(config_cls)}
    known = cfg_fields | set(run_defaults)
    for key in recipe:
        if key not in known:
            raise DataError(recipe_path or "recipe", None, key,
                            f"unknown recipe key; known keys: {', '.join(sorted(known))}")
    merged = {**run_defaults, **recipe, **{k: v for k, v in cli.items() if v is not None}}
    values = {}
    for f in fields(config_cls):
        if f.name in merged:
            values[f.name] = _coerce(merged[f.name], f.default, f.name, recipe_path)
    cfg = config_cls(**values)
    run = {k: merged[k] for k in run_defaults}
    return cfg, run


def _coerce(value, default, name, path):
    """YAML reads ``5e-7`` as a string (YAML 1.1 wants ``5.0e-7``); convert numbers by the field's type."""
    from rlhfkit.data.errors import DataError

    if isinstance(default, bool) or not isinstance(default, (int, float)) or isinstance(value, bool):
        return value
    try:
        return type(default)(value) if not (isinstance(default, int) and isinstance(value, float)) else value
    except (TypeError, ValueError):
        raise DataError(path or "recipe", None, name, f"expected a number, got {value!r}") from None
