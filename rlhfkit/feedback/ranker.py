"""Active selection: score items by reward-model disagreement so the server serves those first.

A ranker is any callable ``(items: list[PreferenceItem]) -> list[float]`` returning one
disagreement score per item (higher = more informative to label). This module receives a built
ranker and never builds one: building it (from a reward-model ensemble folder, which needs
torch) is the command layer's job (``rlhfkit feedback rank --ranker PATH``; ``rlhfkit serve
--ranker`` runs that command in a child process). ``score_project`` writes the scores into
``items.disagreement`` and sets the project's ``order_by`` to "disagreement"; the server then only
sorts by that column.
"""

from __future__ import annotations

import math
from typing import Protocol, Sequence

from sqlalchemy import select

from rlhfkit.feedback.db import Database
from rlhfkit.feedback.export import response_of
from rlhfkit.feedback.models import Item, Project
from rlhfkit.schema import PreferenceItem


class Ranker(Protocol):
    def __call__(self, items: Sequence[PreferenceItem]) -> Sequence[float]: ...


class RankerError(ValueError):
    pass


def _as_item(row: Item) -> PreferenceItem:
    return PreferenceItem(id=row.external_id, prompt=row.prompt,
                          responses=[response_of(r) for r in row.responses], metadata=row.item_metadata or {})


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
