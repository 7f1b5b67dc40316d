"""API routes for running a team: membership, archive/delete, guidelines, per-annotator progress.

Kept apart from ``app.py`` (the judgement hot path) so each file has one job. An annotator asking
about a project they may not see gets 404, as for a project that does not exist.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi import Path as FastAPIPath
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from rlhfkit.feedback import projects, repo
from rlhfkit.feedback.auth import AdminDep, AnnotatorDep
from rlhfkit.feedback.http_guard import no_nul, strict_body

RowId = Annotated[int, FastAPIPath(ge=1, le=2**31 - 1)]
Strict = Annotated[None, Depends(strict_body)]
Name = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(no_nul)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProjectPatch(_Body):
    instructions: Annotated[str, AfterValidator(no_nul)] | None = Field(default=None, max_length=20_000)
    examples: list[dict[str, Any]] | None = Field(
        default=None, max_length=projects.MAX_EXAMPLES,
        description="worked examples: {prompt, responses: [text, ...], answer, why}")
    archived: bool | None = None
    members_only: bool | None = None


class MembersBody(_Body):
    add: list[Name] = Field(default_factory=list, max_length=1_000)
    remove: list[Name] = Field(default_factory=list, max_length=1_000)


def _db(request: Request):
    return request.app.state.db


def settings_of(p) -> dict[str, Any]:
    return {"id": p.id, "name": p.name, "mode": p.mode, "archived": p.archived, "members_only": p.members_only,
            "instructions": p.instructions, "examples": p.examples or []}


def add_team_routes(app: FastAPI) -> None:
    @app.get("/api/projects/{project_id}/guidelines", tags=["annotate"])
    def guidelines(project_id: RowId, a: AnnotatorDep, request: Request) -> dict:
        """The project's guidelines and worked examples (shown before the first item and under "?")."""
        with _db(request).read() as s:
            p = projects.visible_project(s, project_id, a)
            return {"instructions": p.instructions, "examples": p.examples or []}

    @app.get("/api/projects/{project_id}/progress", tags=["annotate"])
    def my_progress(project_id: RowId, a: AnnotatorDep, request: Request) -> dict:
        """Your judgements done and the items still available to you in this project."""
        with _db(request).read() as s:
            return projects.annotator_progress(s, projects.visible_project(s, project_id, a), a)

    @app.patch("/api/admin/projects/{project_id}", tags=["admin"])
    def update(project_id: RowId, body: ProjectPatch, _: AdminDep, _s: Strict, request: Request) -> dict:
        """Edit guidelines and examples, archive or unarchive, open or restrict to members."""
        with _db(request).session() as s:
            p = repo.get_project(s, project_id)
            return settings_of(projects.update_project(s, p, **body.model_dump(exclude_none=True)))

    @app.delete("/api/admin/projects/{project_id}", tags=["admin"])
    def delete(project_id: RowId, _: AdminDep, request: Request,
               confirm: Annotated[str, Query(max_length=200, description="the project's name")] = "") -> dict:
        """Delete a project and all its items and judgements; ``confirm`` must repeat its name."""
        with _db(request).session() as s:
            p = repo.get_project(s, project_id)
            if confirm != p.name:
                raise repo.Conflict(f"deleting project {project_id} needs ?confirm=<its name>; "
                                    "archive it instead to hide it and keep the data")
            return {"deleted": p.name, **projects.delete_project(s, p)}

    @app.get("/api/admin/projects/{project_id}/members", tags=["admin"])
    def list_members(project_id: RowId, _: AdminDep, request: Request) -> dict:
        with _db(request).read() as s:
            p = repo.get_project(s, project_id)
            return {"members_only": p.members_only, "members": projects.members(s, p)}

    @app.post("/api/admin/projects/{project_id}/members", tags=["admin"])
    def change_members(project_id: RowId, body: MembersBody, _: AdminDep, _s: Strict, request: Request) -> dict:
        """Add and remove members; the first member makes the project members-only."""
        with _db(request).session() as s:
            p = repo.get_project(s, project_id)
            names = projects.set_members(s, p, body.add, body.remove)
            return {"members_only": p.members_only, "members": names}
