"""The annotation server: a JSON API (used by the page and by simulated annotators) and pages.

Auth: a token in ``Authorization: Bearer <token>`` or in the ``rlhfkit_token`` cookie that the
login link (``/login?token=...``) sets. No token or an unknown one is 401; an annotator token on
an admin endpoint (or the admin token on an annotator endpoint) is 403; another annotator's
assignment or judgement is reported as missing, 404, so ids cannot be probed.
Never imports torch: training reads exported files, not this server.
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi import Path as FastAPIPath
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError, OperationalError

from rlhfkit.feedback import projects, repo
from rlhfkit.feedback.admin_pages import add_admin_page_routes
from rlhfkit.feedback.arena_pages import add_arena_routes
from rlhfkit.feedback.auth import AdminDep, AnnotatorDep, TokenCache
from rlhfkit.feedback.db import Database
from rlhfkit.feedback.export import FORMATS, export_lines
from rlhfkit.feedback.http_guard import BodyLimit, strict_body, validation_error
from rlhfkit.feedback.items_io import parse_records
from rlhfkit.feedback.kinds import SubmittedJudgement
from rlhfkit.feedback.models import Judgement, Project
from rlhfkit.feedback.pages import add_page_routes
from rlhfkit.feedback.review import add_review_routes
from rlhfkit.feedback.review_pages import add_review_page_routes
from rlhfkit.feedback.stats import project_stats
from rlhfkit.feedback.team_api import add_team_routes
from rlhfkit.schema import Source

log = logging.getLogger("rlhfkit.feedback")
MAX_BODY_BYTES = 2_000_000
ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"


# ---------------------------------------------------------------- request bodies


def _no_nul(text: str) -> str:
    # PostgreSQL text cannot hold NUL; refuse it on every backend rather than fail late with a 500.
    if "\x00" in text:
        raise ValueError("text must not contain NUL characters")
    return text


Text = Annotated[str, AfterValidator(_no_nul)]
# Row ids fit a 32-bit INTEGER on PostgreSQL; a bigger number is a 422, not a driver error.
RowId = Annotated[int, FastAPIPath(ge=1, le=2**31 - 1)]
JudgementId = Annotated[str, FastAPIPath(pattern=ID_PATTERN)]
Strict = Annotated[None, Depends(strict_body)]  # declare after the auth parameter: 401 before 422


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _small_config(config: dict[str, Any] | None) -> dict[str, Any] | None:
    if config is not None and len(json.dumps(config)) > repo.MAX_CONFIG_CHARS:
        raise ValueError(f"annotator_config is larger than {repo.MAX_CONFIG_CHARS} characters of JSON")
    return config


class SubmitBody(_Body):
    id: str = Field(pattern=ID_PATTERN, description="client-generated id; a retry with it is a no-op")
    judgement: SubmittedJudgement
    critique: Text | None = Field(default=None, max_length=10_000)
    time_spent_s: float | None = Field(default=None, ge=0, le=86_400)
    source: Source = Field(default="human", description="who made the label: human, simulated or model_judge")
    annotator_config: Annotated[dict[str, Any] | None, AfterValidator(_small_config)] = Field(
        default=None, description="what shaped a simulated or model-judge label (JSON, at most 4,000 characters)")
    response_critiques: list[ResponseCritiqueBody] | None = Field(
        default=None, max_length=20, description="critiques of single responses (language feedback)")
    edit: ResponseEditBody | None = Field(default=None, description="a response rewritten into what it should be")


class ResponseCritiqueBody(_Body):
    response: int = Field(ge=0, le=1_000, description="original index of the critiqued response")
    text: Text = Field(max_length=10_000)


class ResponseEditBody(_Body):
    response: int = Field(ge=0, le=1_000, description="original index of the response rewritten")
    text: Text = Field(min_length=1, max_length=50_000)


class SkipBody(_Body):
    reason: Text = Field(min_length=1, max_length=1_000)


class ProjectBody(_Body):
    name: Text = Field(min_length=1, max_length=200)
    mode: Literal["ranking", "pairwise", "rating", "binary", "arena"] = "ranking"
    overlap: int = Field(default=3, ge=1, le=100)
    lease_seconds: int = Field(default=900, ge=10, le=7 * 86_400)
    gold_rate: float = Field(default=0.0, ge=0, le=1)
    daily_cap: int | None = Field(default=None, ge=1, le=100_000)
    instructions: Text = Field(default="", max_length=20_000)


class ImportBody(_Body):
    # Raw records, each checked as a PreferenceItem (strict) by items_io.parse_records, so one
    # item's empty response can be flagged or skipped instead of refusing the whole batch.
    items: list[dict[str, Any]] = Field(min_length=1, max_length=5_000,
                                        description="PreferenceItem objects (rlhfkit schema)")
    empty_responses: Literal["flag", "skip"] = Field(
        default="flag", description="flag: import items with an empty response, shown as '(empty response)'; "
        "skip: leave them out and list them in skipped_empty")
    gold: bool = False
    source: Text = Field(default="api", max_length=200)


class AnnotatorBody(_Body):
    name: Text = Field(min_length=1, max_length=100)
    role: Literal["annotator", "reviewer"] = "annotator"


# ---------------------------------------------------------------- app


def _project_summary(s, p: Project) -> dict[str, Any]:
    return {"id": p.id, "name": p.name, "mode": p.mode, "overlap": p.overlap, "gold_rate": p.gold_rate,
            "daily_cap": p.daily_cap, "order_by": p.order_by, "instructions": p.instructions,
            "archived": p.archived, "members_only": p.members_only}


def _judgement_out(j: Judgement, created: bool) -> dict[str, Any]:
    return {"id": j.client_id, "assignment_id": j.assignment_id, "judgement": j.judgement, "critique": j.critique,
            "shown_order": j.shown_order, "created_at": j.created_at.isoformat() + "Z", "created": created,
            "response_critiques": j.response_critiques, "edit": j.edit}


def db(request: Request) -> Database:
    return request.app.state.db


def add_annotator_routes(app: FastAPI) -> None:
    """The API the annotation page and simulated annotators use."""

    @app.get("/api/health", tags=["meta"])
    def health() -> dict:
        return {"ok": True}

    @app.get("/api/me", tags=["annotate"])
    def me(a: AnnotatorDep, request: Request) -> dict:
        with db(request).read() as s:
            visible = [_project_summary(s, p) for p in projects.visible_projects(s, a)]
        return {"name": a.name, "role": a.role, "projects": visible}

    @app.get("/api/projects/{project_id}/next", tags=["annotate"])
    def next_item(project_id: RowId, a: AnnotatorDep, request: Request) -> dict:
        with db(request).session(durable=False) as s:  # a lease: promised to nobody, no fsync of its own
            p = projects.visible_project(s, project_id, a)  # archived / not a member: 404
            got = repo.next_assignment(s, p, a)
            progress = repo.progress(s, p, a)
            if isinstance(got, repo.NoWork):
                return {"done": True, "reason": got.reason, "progress": progress}
            return {"done": False, "assignment": repo.assignment_view(s, got), "progress": progress,
                    "instructions": p.instructions}

    @app.post("/api/assignments/{assignment_id}/judgement", tags=["annotate"])
    def submit(assignment_id: RowId, body: SubmitBody, a: AnnotatorDep, _s: Strict, request: Request) -> JSONResponse:
        for attempt in range(3):  # a concurrent retry with the same id loses the insert race
            try:
                with db(request).session() as s:
                    j, created = repo.submit(
                        s, a, assignment_id, body.id, body.judgement.model_dump(), body.critique, body.time_spent_s,
                        source=body.source, annotator_config=body.annotator_config,
                        response_critiques=[c.model_dump() for c in body.response_critiques or []],
                        edit=body.edit.model_dump() if body.edit else None)
                    out = _judgement_out(j, created)
                return JSONResponse(out, status_code=201 if created else 200)
            except IntegrityError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    @app.post("/api/assignments/{assignment_id}/skip", tags=["annotate"])
    def skip(assignment_id: RowId, body: SkipBody, a: AnnotatorDep, _s: Strict, request: Request) -> dict:
        with db(request).session() as s:
            asg = repo.skip(s, a, assignment_id, body.reason)
            return {"assignment_id": asg.id, "status": asg.status}

    @app.get("/api/judgements/{judgement_id}", tags=["annotate"])
    def get_judgement(judgement_id: JudgementId, a: AnnotatorDep, request: Request) -> dict:
        with db(request).read() as s:
            return _judgement_out(repo.own_judgement(s, a, judgement_id), False)

    @app.delete("/api/judgements/{judgement_id}", tags=["annotate"])
    def retract(judgement_id: JudgementId, a: AnnotatorDep, request: Request) -> dict:
        """Undo a submitted judgement: it is deleted and its item handed back to you."""
        with db(request).session() as s:
            asg = repo.retract(s, a, judgement_id)
            return {"assignment": repo.assignment_view(s, asg)}



def add_admin_routes(app: FastAPI) -> None:
    """Projects, items, annotators, statistics and export: admin token only."""

    @app.get("/api/admin/projects", tags=["admin"])
    def list_projects(_: AdminDep, request: Request) -> list[dict]:
        with db(request).read() as s:
            return [project_stats(s, p) for p in repo.list_projects(s)]

    @app.post("/api/admin/projects", tags=["admin"], status_code=201)
    def create_project(body: ProjectBody, _: AdminDep, _s: Strict, request: Request) -> dict:
        with db(request).session() as s:
            return _project_summary(s, repo.create_project(s, **body.model_dump()))

    @app.post("/api/admin/projects/{project_id}/items", tags=["admin"])
    def import_items(project_id: RowId, body: ImportBody, _: AdminDep, _s: Strict, request: Request) -> dict:
        """Add items; annotations they carry are imported as judgements (gold: the answer).
        Items with an empty response are flagged or left out, as ``empty_responses`` says."""
        try:
            parsed = parse_records(body.items, empty=body.empty_responses)
        except ValueError as e:
            raise repo.Invalid(str(e)) from None
        for item, n in parsed.items:
            if body.gold:
                try:
                    repo.gold_answer_of(item)
                except repo.Invalid as e:
                    raise repo.Invalid(f"items[{n}]: {e}") from None
        with db(request).session() as s:
            p = repo.get_project(s, project_id)
            sources = [(it, f"{body.source}:{n + 1}") for it, n in parsed.items]
            result = repo.import_items(s, p, sources, gold=body.gold)
        return {"added": result.added, "skipped_existing": result.skipped, "annotations": result.annotations,
                "skipped_empty": parsed.skipped,
                "flagged_empty": sum(1 for it, _ in parsed.items if it.metadata.get("empty_responses"))}

    @app.get("/api/admin/projects/{project_id}/stats", tags=["admin"])
    def stats(project_id: RowId, _: AdminDep, request: Request) -> dict:
        with db(request).read() as s:
            return project_stats(s, repo.get_project(s, project_id))

    @app.get("/api/admin/projects/{project_id}/export", tags=["admin"], response_class=PlainTextResponse)
    def export(project_id: RowId, _: AdminDep, request: Request,
               format: Annotated[Literal["rlhfkit", "trl-pairs", "hh", "trl-unpaired", "labelstudio", "argilla",
                                         "sft", "edit-pairs", "ilf"], Query()] = "rlhfkit",
               include_gold: bool = False,
               adjudicated: Annotated[Literal["prefer", "ignore"], Query()] = "prefer") -> PlainTextResponse:
        assert format in FORMATS
        with db(request).read() as s:
            lines, _side = export_lines(s, repo.get_project(s, project_id), format, include_gold, adjudicated)
        return PlainTextResponse("".join(line + "\n" for line in lines), media_type="application/x-ndjson")

    @app.get("/api/admin/annotators", tags=["admin"])
    def list_annotators(_: AdminDep, request: Request) -> list[dict]:
        with db(request).read() as s:
            return repo.annotator_summaries(s)

    @app.post("/api/admin/annotators", tags=["admin"], status_code=201)
    def add_annotator(body: AnnotatorBody, _: AdminDep, _s: Strict, request: Request) -> dict:
        with db(request).session() as s:
            a, token = repo.add_annotator(s, body.name, role=body.role)
            return {"id": a.id, "name": a.name, "role": a.role, "token": token,
                    "login_url": str(request.base_url) + f"login?token={token}"}


SERVE_DB_ENV = "RLHFKIT_SERVE_DB"


def app_from_env() -> FastAPI:
    """The app over the database named in $RLHFKIT_SERVE_DB: the factory each uvicorn worker
    process calls when ``rlhfkit serve --workers N`` runs several (PostgreSQL only)."""
    import os

    return create_app(Database(os.environ[SERVE_DB_ENV]))


def create_app(db: str | Database, max_body_bytes: int = MAX_BODY_BYTES, token_cache_s: float = 5.0) -> FastAPI:
    """The app over a database path/URL (migrated on open) or an open ``Database``."""
    database = db if isinstance(db, Database) else Database(db)
    app = FastAPI(title="rlhfkit feedback", version="1",
                  description="Human preference collection: assignment, judgements, agreement, export.")
    app.state.db = database
    app.state.token_cache = TokenCache(token_cache_s)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)

    app.add_exception_handler(RequestValidationError, validation_error)

    @app.exception_handler(repo.FeedbackError)
    async def _feedback_error(_req, exc: repo.FeedbackError):
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(OperationalError)
    async def _busy(_req, exc: OperationalError):
        log.warning("database busy: %s", exc)
        return JSONResponse({"detail": "database busy, retry"}, status_code=503, headers={"Retry-After": "1"})

    add_annotator_routes(app)
    add_admin_routes(app)
    add_team_routes(app)
    add_review_routes(app)
    add_page_routes(app)
    add_review_page_routes(app)
    add_arena_routes(app)
    add_admin_page_routes(app)
    return app
