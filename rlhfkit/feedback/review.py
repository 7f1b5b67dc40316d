"""Review: find the items annotators disagree on most (or that fail gold), show every judgement
side by side, and record an adjudicated label.

Disagreement of an item is the mean over its units (pairs of responses for rankings and pairwise
projects, responses for ratings and thumbs) of the share of annotator pairs that disagree,
1 - P_u with P_u from ``stats`` (for ratings: the mean absolute difference of two annotators'
scores divided by 6, the width of the 1-7 scale). A gold item is queued when any judgement of
it misses a pair ordering of the gold answer. The queue puts gold failures first, then the most
disputed items; adjudicated items stay listed, marked.

An adjudication is one label per item, by a reviewer (an annotator with role "reviewer", who
may only review projects they may see). It never changes the judgements: the export prefers it
(``export.py``) and keeps the originals in the item's metadata; statistics stay on the originals.
"""

from __future__ import annotations

from collections import defaultdict
from itertools import combinations
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi import Path as FastAPIPath
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from rlhfkit.feedback import projects, repo
from rlhfkit.feedback.auth import AnnotatorDep
from rlhfkit.feedback.http_guard import no_nul, strict_body
from rlhfkit.feedback.kinds import SubmittedJudgement
from rlhfkit.feedback.models import Adjudication, Annotator, Assignment, Item, Judgement, Project
from rlhfkit.feedback.stats import _gold_score, pair_labels

RowId = Annotated[int, FastAPIPath(ge=1, le=2**31 - 1)]


def _unit_values(j: dict) -> dict[Any, Any]:
    if j["kind"] == "per_response":
        return {x["response"]: (x["score"] if x["kind"] == "rating" else x["thumbs_up"]) for x in j["judgements"]}
    return pair_labels(j)


def item_disagreement(judgements: list[dict]) -> float | None:
    """Mean over units with 2+ values of the share of annotator pairs that disagree (0..1)."""
    units: dict[Any, list] = defaultdict(list)
    for j in judgements:
        for unit, value in _unit_values(j).items():
            units[unit].append(value)
    scores = []
    for values in units.values():
        if len(values) < 2:
            continue
        pairs = list(combinations(values, 2))
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            scores.append(sum(abs(a - b) for a, b in pairs) / (6.0 * len(pairs)))
        else:
            scores.append(sum(a != b for a, b in pairs) / len(pairs))
    return sum(scores) / len(scores) if scores else None


def review_queue(s: Session, project: Project, limit: int = 50) -> list[dict[str, Any]]:
    by_item: dict[int, list[Judgement]] = defaultdict(list)
    for j in s.scalars(select(Judgement).where(Judgement.project_id == project.id)):
        by_item[j.item_id].append(j)
    items = {i.id: i for i in s.scalars(select(Item).where(Item.id.in_(list(by_item))))} if by_item else {}
    adjudicated = set(s.scalars(select(Adjudication.item_id).where(Adjudication.project_id == project.id)))
    out = []
    for item_id, rows in by_item.items():
        item = items[item_id]
        if item.is_gold:
            misses = [j for j in rows if item.gold_answer and (_gold_score(j.judgement, item.gold_answer) or 0.0) < 1.0]
            if misses:
                out.append({"item_id": item_id, "external_id": item.external_id, "reason": "gold",
                            "disagreement": None, "failed_gold": len(misses), "judgements": len(rows),
                            "adjudicated": item_id in adjudicated})
            continue
        d = item_disagreement([j.judgement for j in rows])
        if d is not None and d > 0:
            out.append({"item_id": item_id, "external_id": item.external_id, "reason": "disagreement",
                        "disagreement": round(d, 4), "failed_gold": 0, "judgements": len(rows),
                        "adjudicated": item_id in adjudicated})
    out.sort(key=lambda r: (r["reason"] != "gold", -(r["disagreement"] or 0), r["item_id"]))
    return out[:limit]


def item_review(s: Session, item: Item) -> dict[str, Any]:
    """The item with every judgement side by side (original response indices) and any adjudication."""
    names = dict(s.execute(select(Annotator.id, Annotator.name)).all())
    rows = list(s.scalars(select(Judgement).where(Judgement.item_id == item.id).order_by(Judgement.created_at)))
    adj = s.scalar(select(Adjudication).where(Adjudication.item_id == item.id))
    project = s.get(Project, item.project_id)
    return {
        "item_id": item.id, "external_id": item.external_id, "project_id": project.id, "mode": project.mode,
        "prompt": item.prompt, "is_gold": item.is_gold, "gold_answer": item.gold_answer,
        "responses": [{"index": n, "text": r["text"], "empty": not r["text"].strip()}
                      for n, r in enumerate(item.responses)],
        "judgements": [{"annotator": names[j.annotator_id], "judgement": j.judgement, "critique": j.critique,
                        "source": j.source, "time_s": j.server_time_s, "shown_order": j.shown_order,
                        "created_at": j.created_at.isoformat() + "Z"} for j in rows],
        "disagreement": item_disagreement([j.judgement for j in rows if not j.is_gold]),
        "adjudication": None if adj is None else {
            "judgement": adj.judgement, "note": adj.note, "reviewer": names[adj.reviewer_id],
            "created_at": adj.created_at.isoformat() + "Z"},
    }


def adjudicate(s: Session, reviewer: Annotator, item: Item, judgement: dict, note: str | None) -> Adjudication:
    """Record (or replace) the adjudicated label of an item, validated like a judgement."""
    project = s.get(Project, item.project_id)
    k = len(item.responses)
    shown = list(range(k))
    if judgement.get("kind") == "pairwise":  # the reviewer may settle any pair the annotators saw
        shown = [judgement.get("a"), judgement.get("b")] + [i for i in range(k) if i not in (judgement.get("a"), judgement.get("b"))]
        if sorted(shown) != list(range(k)):
            raise repo.Invalid(f"pairwise a and b must be two different responses 0..{k - 1}")
    clean = repo.validate_judgement(project.mode, Assignment(shown_order=shown), judgement)
    note = (note or "").strip() or None
    adj = s.scalar(select(Adjudication).where(Adjudication.item_id == item.id))
    if adj is None:
        adj = Adjudication(project_id=project.id, item_id=item.id, reviewer_id=reviewer.id, judgement=clean,
                           note=note, created_at=repo.utcnow())
        s.add(adj)
    else:
        adj.reviewer_id, adj.judgement, adj.note, adj.created_at = reviewer.id, clean, note, repo.utcnow()
    s.flush()
    return adj


# ---------------------------------------------------------------- API


def reviewer_only(a: AnnotatorDep) -> Annotator:
    if a.role != "reviewer":
        raise HTTPException(403, "reviewer role required (rlhfkit annotators add NAME --role reviewer)")
    return a


ReviewerDep = Annotated[Annotator, Depends(reviewer_only)]
Strict = Annotated[None, Depends(strict_body)]


class AdjudicationBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    judgement: SubmittedJudgement
    note: Annotated[str, AfterValidator(no_nul)] | None = Field(default=None, max_length=10_000)


def _reviewable_item(s: Session, item_id: int, reviewer: Annotator) -> Item:
    item = s.get(Item, item_id)
    if item is None:
        raise repo.NotFound(f"no item {item_id}")
    projects.visible_project(s, item.project_id, reviewer)  # 404 for a project they may not see
    return item


def add_review_routes(app: FastAPI) -> None:
    @app.get("/api/review/projects/{project_id}/queue", tags=["review"])
    def queue(project_id: RowId, r: ReviewerDep, request: Request,
              limit: Annotated[int, Query(ge=1, le=1_000)] = 50) -> list[dict]:
        """Items to review: gold failures first, then by disagreement, most disputed first."""
        with request.app.state.db.read() as s:
            return review_queue(s, projects.visible_project(s, project_id, r), limit)

    @app.get("/api/review/items/{item_id}", tags=["review"])
    def show(item_id: RowId, r: ReviewerDep, request: Request) -> dict:
        with request.app.state.db.read() as s:
            return item_review(s, _reviewable_item(s, item_id, r))

    @app.post("/api/review/items/{item_id}/adjudication", tags=["review"])
    def record(item_id: RowId, body: AdjudicationBody, r: ReviewerDep, _s: Strict, request: Request) -> dict:
        """Record the adjudicated label (replacing an earlier one); the judgements stay as they are."""
        with request.app.state.db.session() as s:
            item = _reviewable_item(s, item_id, r)
            adjudicate(s, r, item, body.judgement.model_dump(), body.note)
            return item_review(s, item)
