"""The annotation server: a JSON API (used by the page and by simulated annotators) and pages.

Auth: a token in ``Authorization: Bearer <token>`` or in the ``rlhfkit_token`` cookie that the
login link (``/login?token=...``) sets. No token or an unknown one is 401; an annotator token on
an admin endpoint (or the admin token on an annotator endpoint) is 403; another annotator's
assignment or judgement is reported as missing, 404, so ids cannot be probed.
Never imports torch: training reads exported files, not this server.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi import Path as FastAPIPath
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, OperationalError

from rlhfkit.feedback import repo
from rlhfkit.feedback.db import Database
from rlhfkit.feedback.export import FORMATS, export_lines
from rlhfkit.feedback.items_io import check_lengths
from rlhfkit.feedback.models import Annotator, Assignment, Judgement, Project
from rlhfkit.feedback.stats import project_stats
from rlhfkit.schema import Judgement as JudgementSchema
from rlhfkit.schema import PreferenceItem

log = logging.getLogger("rlhfkit.feedback")
COOKIE = "rlhfkit_token"
MAX_BODY_BYTES = 2_000_000
ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"


class BodyLimit:
    """ASGI middleware: refuse request bodies over a byte limit with a clear 413."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        too_big = JSONResponse({"detail": f"request body is larger than {self.max_bytes} bytes"}, status_code=413)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            return await too_big(scope, receive, send)
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise _TooBig()
            return message

        try:
            await self.app(scope, limited, send)
        except _TooBig:
            await too_big(scope, receive, send)


class _TooBig(Exception):
    pass


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


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SubmitBody(_Body):
    id: str = Field(pattern=ID_PATTERN, description="client-generated id; a retry with it is a no-op")
    judgement: JudgementSchema
    critique: Text | None = Field(default=None, max_length=10_000)
    time_spent_s: float | None = Field(default=None, ge=0, le=86_400)


class SkipBody(_Body):
    reason: Text = Field(min_length=1, max_length=1_000)


class ProjectBody(_Body):
    name: Text = Field(min_length=1, max_length=200)
    mode: Literal["ranking", "pairwise"] = "ranking"
    overlap: int = Field(default=3, ge=1, le=100)
    lease_seconds: int = Field(default=900, ge=10, le=7 * 86_400)
    gold_rate: float = Field(default=0.0, ge=0, le=1)
    daily_cap: int | None = Field(default=None, ge=1, le=100_000)
    instructions: Text = Field(default="", max_length=20_000)


class ImportBody(_Body):
    items: list[PreferenceItem] = Field(min_length=1, max_length=5_000)
    gold: bool = False
    source: Text = Field(default="api", max_length=200)


class AnnotatorBody(_Body):
    name: Text = Field(min_length=1, max_length=100)


# ---------------------------------------------------------------- auth


@dataclass
class Principal:
    admin: bool
    annotator: Annotator | None = None


def _token(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    return request.cookies.get(COOKIE) or None


def principal_of(request: Request) -> Principal:
    token = _token(request)
    if token is None or len(token) > 200:
        raise HTTPException(401, "missing or malformed token: use your login link or an Authorization: Bearer header")
    cache: TokenCache = request.app.state.token_cache
    principal = cache.get(token)
    if principal is None:
        with request.app.state.db.read() as s:
            if repo.is_admin_token(s, token):
                principal = Principal(admin=True)
            else:
                a = repo.annotator_by_token(s, token)
                principal = Principal(admin=False, annotator=a) if a else None
        if principal is None:
            raise HTTPException(401, "unknown or deactivated token")
        cache.put(token, principal)
    return principal


class TokenCache:
    """token -> Principal for a few seconds: saves a database read on every request.

    A deactivated annotator or a rotated admin token stops working within ``ttl_s``.
    """

    def __init__(self, ttl_s: float = 5.0, max_size: int = 10_000):
        self.ttl_s, self.max_size = ttl_s, max_size
        self._entries: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def get(self, token: str) -> Principal | None:
        with self._lock:
            hit = self._entries.get(token)
        if hit is None or time.monotonic() - hit[0] > self.ttl_s:
            return None
        return hit[1]

    def put(self, token: str, principal: Principal) -> None:
        with self._lock:
            if len(self._entries) >= self.max_size:
                self._entries.clear()
            self._entries[token] = (time.monotonic(), principal)


def annotator_only(p: Annotated[Principal, Depends(principal_of)]) -> Annotator:
    if p.annotator is None:
        raise HTTPException(403, "this endpoint is for annotators; the admin token cannot annotate")
    return p.annotator


def admin_only(p: Annotated[Principal, Depends(principal_of)]) -> Principal:
    if not p.admin:
        raise HTTPException(403, "admin token required")
    return p


AnnotatorDep = Annotated[Annotator, Depends(annotator_only)]
AdminDep = Annotated[Principal, Depends(admin_only)]


# ---------------------------------------------------------------- app


def _project_summary(s, p: Project) -> dict[str, Any]:
    return {"id": p.id, "name": p.name, "mode": p.mode, "overlap": p.overlap, "gold_rate": p.gold_rate,
            "daily_cap": p.daily_cap, "order_by": p.order_by, "instructions": p.instructions}


def _judgement_out(j: Judgement, created: bool) -> dict[str, Any]:
    return {"id": j.id, "assignment_id": j.assignment_id, "judgement": j.judgement, "critique": j.critique,
            "shown_order": j.shown_order, "created_at": j.created_at.isoformat() + "Z", "created": created}


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
            projects = [_project_summary(s, p) for p in s.scalars(select(Project).order_by(Project.id))]
        return {"name": a.name, "projects": projects}

    @app.get("/api/projects/{project_id}/next", tags=["annotate"])
    def next_item(project_id: RowId, a: AnnotatorDep, request: Request) -> dict:
        with db(request).session() as s:
            p = repo.get_project(s, project_id)
            got = repo.next_assignment(s, p, a)
            progress = repo.progress(s, p, a)
            if isinstance(got, repo.NoWork):
                return {"done": True, "reason": got.reason, "progress": progress}
            return {"done": False, "assignment": repo.assignment_view(s, got), "progress": progress,
                    "instructions": p.instructions}

    @app.post("/api/assignments/{assignment_id}/judgement", tags=["annotate"])
    def submit(assignment_id: RowId, body: SubmitBody, a: AnnotatorDep, request: Request) -> JSONResponse:
        for attempt in range(3):  # a concurrent retry with the same id loses the insert race
            try:
                with db(request).session() as s:
                    j, created = repo.submit(s, a, assignment_id, body.id, body.judgement.model_dump(),
                                             body.critique, body.time_spent_s)
                    out = _judgement_out(j, created)
                return JSONResponse(out, status_code=201 if created else 200)
            except IntegrityError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    @app.post("/api/assignments/{assignment_id}/skip", tags=["annotate"])
    def skip(assignment_id: RowId, body: SkipBody, a: AnnotatorDep, request: Request) -> dict:
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
            return [project_stats(s, p) for p in s.scalars(select(Project).order_by(Project.id))]

    @app.post("/api/admin/projects", tags=["admin"], status_code=201)
    def create_project(body: ProjectBody, _: AdminDep, request: Request) -> dict:
        with db(request).session() as s:
            return _project_summary(s, repo.create_project(s, **body.model_dump()))

    @app.post("/api/admin/projects/{project_id}/items", tags=["admin"])
    def import_items(project_id: RowId, body: ImportBody, _: AdminDep, request: Request) -> dict:
        for n, item in enumerate(body.items):
            try:
                check_lengths(item)
                if body.gold:
                    repo.gold_answer_of(item)
            except ValueError as e:
                raise repo.Invalid(f"items[{n}]: {e}") from None
        with db(request).session() as s:
            p = repo.get_project(s, project_id)
            sources = [(it, f"{body.source}:{n + 1}") for n, it in enumerate(body.items)]
            added, skipped = repo.import_items(s, p, sources, gold=body.gold)
        return {"added": added, "skipped_existing": skipped}

    @app.get("/api/admin/projects/{project_id}/stats", tags=["admin"])
    def stats(project_id: RowId, _: AdminDep, request: Request) -> dict:
        with db(request).read() as s:
            return project_stats(s, repo.get_project(s, project_id))

    @app.get("/api/admin/projects/{project_id}/export", tags=["admin"], response_class=PlainTextResponse)
    def export(project_id: RowId, _: AdminDep, request: Request,
               format: Annotated[Literal["rlhfkit", "trl-pairs", "hh"], Query()] = "rlhfkit",
               include_gold: bool = False) -> PlainTextResponse:
        assert format in FORMATS
        with db(request).read() as s:
            lines, _side = export_lines(s, repo.get_project(s, project_id), format, include_gold)
        return PlainTextResponse("".join(line + "\n" for line in lines), media_type="application/x-ndjson")

    @app.get("/api/admin/annotators", tags=["admin"])
    def list_annotators(_: AdminDep, request: Request) -> list[dict]:
        with db(request).read() as s:
            counts = dict(s.execute(select(Judgement.annotator_id, func.count(Judgement.id))
                                    .group_by(Judgement.annotator_id)).all())
            return [{"id": a.id, "name": a.name, "active": a.active, "judgements": counts.get(a.id, 0)}
                    for a in s.scalars(select(Annotator).order_by(Annotator.id))]

    @app.post("/api/admin/annotators", tags=["admin"], status_code=201)
    def add_annotator(body: AnnotatorBody, _: AdminDep, request: Request) -> dict:
        with db(request).session() as s:
            a, token = repo.add_annotator(s, body.name)
            return {"id": a.id, "name": a.name, "token": token,
                    "login_url": str(request.base_url) + f"login?token={token}"}


def create_app(db: str | Database, max_body_bytes: int = MAX_BODY_BYTES, token_cache_s: float = 5.0) -> FastAPI:
    """The app over a database path/URL (migrated on open) or an open ``Database``."""
    database = db if isinstance(db, Database) else Database(db)
    app = FastAPI(title="rlhfkit feedback", version="1",
                  description="Human preference collection: assignment, judgements, agreement, export.")
    app.state.db = database
    app.state.token_cache = TokenCache(token_cache_s)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)

    @app.exception_handler(repo.FeedbackError)
    async def _feedback_error(_req, exc: repo.FeedbackError):
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(OperationalError)
    async def _busy(_req, exc: OperationalError):
        log.warning("database busy: %s", exc)
        return JSONResponse({"detail": "database busy, retry"}, status_code=503, headers={"Retry-After": "1"})

    add_annotator_routes(app)
    add_admin_routes(app)
    from rlhfkit.feedback.pages import add_page_routes

    add_page_routes(app)
    return app
