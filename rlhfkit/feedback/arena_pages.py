"""Arena leaderboard: JSON for the admin API and a page (math in ``arena.py``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, Query, Request
from fastapi import Path as FastAPIPath

from rlhfkit.feedback import repo
from rlhfkit.feedback.arena import battles_of, leaderboard
from rlhfkit.feedback.auth import AdminDep
from rlhfkit.feedback.pages import _error, _who, render

RowId = Annotated[int, FastAPIPath(ge=1, le=2**31 - 1)]


def arena_board(s, project_id: int, rounds: int, seed: int) -> dict:
    p = repo.get_project(s, project_id)
    if p.mode != "arena":
        raise repo.Invalid(f"project {p.name!r} is a {p.mode} project; leaderboards are for arena projects")
    battles = battles_of(s, p)
    return {"project": p.name, "battles": int(len(battles.y)), "bootstrap_rounds": rounds, "seed": seed,
            "models": leaderboard(battles, rounds=rounds, seed=seed)}


def add_arena_routes(app: FastAPI) -> None:
    @app.get("/api/admin/projects/{project_id}/leaderboard", tags=["admin"])
    def board(project_id: RowId, _: AdminDep, request: Request,
              rounds: Annotated[int, Query(ge=0, le=2_000)] = 200, seed: int = 0) -> dict:
        """Bradley-Terry scores (Elo scale) with 95% bootstrap intervals of an arena project."""
        with request.app.state.db.read() as s:
            return arena_board(s, project_id, rounds, seed)

    @app.get("/admin/arena/{project_id}", include_in_schema=False)
    def board_page(project_id: int, request: Request):
        role, _ann = _who(request)
        if role != "admin":
            return _error(403 if role else 401, "The leaderboard needs the admin login link.")
        with request.app.state.db.read() as s:
            try:
                data = arena_board(s, project_id, 200, 0)
            except repo.FeedbackError as e:
                return _error(e.status, str(e))
        return render("arena.html", board=data)
