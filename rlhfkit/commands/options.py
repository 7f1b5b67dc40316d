"""CLI flags generated from a trainer's config dataclass, so no setting is left unexposed.

Every field becomes ``--field-name`` (booleans ``--x/--no-x``) with the field's help text;
a field's metadata may name its flag and aliases (``flag="--eval-data", aliases=["--eval"]``).
All flags default to None ("not given"), so precedence stays defaults < ``--recipe`` YAML < flags.
"""

from __future__ import annotations

import inspect
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any, Callable, Optional

import typer


def _flag(f) -> list[str]:
    name = f.metadata.get("flag", "--" + f.name.replace("_", "-"))
    return [name, *f.metadata.get("aliases", [])]


def _help(f) -> str:
    default = f.default if f.default is not MISSING else None
    shown = "''" if default == "" else default
    return f"{f.metadata.get('help', '')} [default: {shown}]"


def config_command(config_cls, run: Callable[[Any], None], trainer: str | tuple[str, ...]) -> Callable[..., None]:
    """A function typer can register whose flags are ``config_cls``'s fields plus ``--recipe``;
    it merges defaults < recipe < flags and calls ``run(cfg)``."""
    params = [inspect.Parameter("recipe", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[Path],
                                default=typer.Option(None, "--recipe", help="YAML recipe; flags override it"))]
    annotations: dict[str, Any] = {"recipe": Optional[Path]}
    for f in fields(config_cls):
        kind = type(f.default) if f.default is not MISSING and f.default is not None else str
        annotation = Optional[kind]
        if kind is bool:
            decls = [f"{_flag(f)[0]}/--no-{_flag(f)[0][2:]}"]
        else:
            decls = _flag(f)
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation,
                                        default=typer.Option(None, *decls, help=_help(f), show_default=False)))
        annotations[f.name] = annotation

    def command(**given) -> None:
        from rlhfkit.commands.common import user_errors
        from rlhfkit.commands.recipe import merge
        from rlhfkit.data.recipe import read_recipe

        recipe = given.pop("recipe")
        with user_errors():
            cfg = merge(config_cls, read_recipe(recipe), given, recipe, trainer)
        run(cfg)

    command.__signature__ = inspect.Signature(params)
    command.__annotations__ = annotations
    return command
