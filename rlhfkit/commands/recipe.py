"""Recipe YAML + CLI flags -> a trainer config, with precedence defaults < YAML < CLI.

A recipe is a flat YAML mapping of fields of one trainer's config dataclass, plus ``trainer:``
naming the trainer it is for (``dpo``, ``sft``, ``reward``; see ``rlhfkit.trainers.registry``).
Unknown keys are refused (a typo would otherwise be silently ignored), and so is a recipe
written for another trainer. Relative paths in a recipe are taken relative to the current
directory.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

RECIPE_KEYS = {"trainer"}  # keys a recipe may hold besides the config's fields


def recipe_trainer(recipe: dict[str, Any], path: Path | None = None) -> str:
    """The trainer a recipe says it is for."""
    from rlhfkit.data.errors import DataError

    name = recipe.get("trainer")
    if not isinstance(name, str) or not name:
        raise DataError(path or "recipe", None, "trainer", "missing: say which trainer the recipe is for, "
                        "e.g. `trainer: dpo`")
    return name


def merge(config_cls, recipe: dict[str, Any], cli: dict[str, Any], recipe_path: Path | None = None,
          trainer: str | tuple[str, ...] | None = None):
    """A ``config_cls`` instance from defaults, then recipe values, then CLI values that were given.

    ``trainer``: the trainer (or trainers) the command runs; a recipe naming another is refused.
    For online RL (a config with ``algo``), ``trainer: ppo`` in a recipe also sets the algorithm.
    """
    from rlhfkit.data.errors import DataError

    cfg_fields = {f.name for f in fields(config_cls)}
    for key in recipe:
        if key not in cfg_fields | RECIPE_KEYS:
            raise DataError(recipe_path or "recipe", None, key,
                            f"unknown recipe key; known keys: {', '.join(sorted(cfg_fields | RECIPE_KEYS))}")
    allowed = (trainer,) if isinstance(trainer, str) else trainer
    if allowed is not None and "trainer" in recipe and recipe["trainer"] not in allowed:
        raise DataError(recipe_path or "recipe", None, "trainer",
                        f"this recipe is for `{recipe['trainer']}`, not `{' | '.join(allowed)}`")
    recipe = dict(recipe)
    if "algo" in cfg_fields and "trainer" in recipe and "algo" not in recipe:
        recipe["algo"] = recipe["trainer"]
    merged = {**recipe, **{k: v for k, v in cli.items() if v is not None}}
    values = {}
    for f in fields(config_cls):
        if f.name in merged:
            values[f.name] = _coerce(merged[f.name], f.default, f.name, recipe_path)
    return config_cls(**values)


def _coerce(value, default, name, path):
    """YAML reads ``5e-7`` as a string (YAML 1.1 wants ``5.0e-7``); convert numbers by the field's
    type, and paths to strings."""
    from rlhfkit.data.errors import DataError

    if isinstance(value, Path):
        return str(value)
    if isinstance(default, bool) or not isinstance(default, (int, float)) or isinstance(value, bool):
        return value
    try:
        return type(default)(value) if not (isinstance(default, int) and isinstance(value, float)) else value
    except (TypeError, ValueError):
        raise DataError(path or "recipe", None, name, f"expected a number, got {value!r}") from None
