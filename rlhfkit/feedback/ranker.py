"""Active selection: score items by reward-model disagreement so the server serves those first.

A ranker is any callable ``(items: list[PreferenceItem]) -> list[float]`` returning one
disagreement score per item (higher = more informative to label). Scoring may need torch, so it
never runs inside the server: ``rlhfkit feedback rank`` (or ``rlhfkit serve --ranker``, which
starts that command in a child process) writes the scores into ``items.disagreement`` and sets
the project's ``order_by`` to "disagreement"; the server then only sorts by that column.

``--ranker`` accepts:
  * ``module:attr`` or ``path/to/file.py:attr``: attr is the ranker callable;
  * a directory with ``ranker.py`` defining ``rank(items)``;
  * a reward-model ensemble directory: loaded with
    ``rlhfkit.rewards.ensemble.load_disagreement_ranker(path)`` when that module exists.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
from pathlib import Path
from typing import Callable, Protocol, Sequence

from sqlalchemy import select

from rlhfkit.feedback.db import Database
from rlhfkit.feedback.models import Item, Project
from rlhfkit.schema import PreferenceItem, Response


class Ranker(Protocol):
    def __call__(self, items: Sequence[PreferenceItem]) -> Sequence[float]: ...


class RankerError(ValueError):
    pass


def _from_file(path: Path, attr: str) -> Callable:
    spec = importlib.util.spec_from_file_location(f"_rlhfkit_ranker_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise RankerError(f"cannot import ranker file {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, attr):
        raise RankerError(f"{path} defines no {attr!r}")
    return getattr(module, attr)


def load_ranker(spec: str) -> Ranker:
    path = Path(spec)
    if path.is_dir():
        if (path / "ranker.py").exists():
            return _from_file(path / "ranker.py", "rank")
        try:
            ensemble = importlib.import_module("rlhfkit.rewards.ensemble")
        except ImportError:
            raise RankerError(
                f"{spec} has no ranker.py and this install has no reward-model ensemble "
                "(rlhfkit.rewards.ensemble); pass module:function instead"
            ) from None
        try:
            return ensemble.load_disagreement_ranker(path)
        except ValueError as err:
            raise RankerError(f"{spec} has no ranker.py, and {err}") from None
    if ":" not in spec:
        raise RankerError(f"--ranker {spec!r}: expected a directory, module:function or file.py:function")
    target, attr = spec.rsplit(":", 1)
    if target.endswith(".py"):
        return _from_file(Path(target), attr)
    try:
        module = importlib.import_module(target)
    except ImportError as e:
        raise RankerError(f"--ranker {spec!r}: cannot import {target}: {e}") from None
    if not hasattr(module, attr):
        raise RankerError(f"--ranker {spec!r}: {target} has no {attr!r}")
    return getattr(module, attr)


def _as_item(row: Item) -> PreferenceItem:
    return PreferenceItem(id=row.external_id, prompt=row.prompt,
                          responses=[Response(**r) for r in row.responses], metadata=row.item_metadata or {})


def score_project(db: Database, project_name: str, ranker: Ranker, batch_size: int = 64) -> int:
    """Write ranker scores into items.disagreement and switch the project to that order."""
    with db.session() as s:
        rows = list(s.scalars(select(Item).join(Project).where(Project.name == project_name, Item.is_gold.is_(False))))
        if not rows and s.scalar(select(Project).where(Project.name == project_name)) is None:
            raise RankerError(f"no project named {project_name!r}")
        items = [_as_item(r) for r in rows]
    scores: list[float] = []
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        got = [float(x) for x in ranker(chunk)]
        if len(got) != len(chunk) or not all(math.isfinite(x) for x in got):
            raise RankerError(f"the ranker returned {len(got)} scores for {len(chunk)} items, or a non-finite score")
        scores.extend(got)
    with db.session() as s:
        for row, score in zip(rows, scores):
            s.get(Item, row.id).disagreement = score
        s.scalar(select(Project).where(Project.name == project_name)).order_by = "disagreement"
    return len(scores)
