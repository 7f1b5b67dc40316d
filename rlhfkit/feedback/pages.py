"""Server-rendered pages: login by token link, project list, the annotation page, admin dashboard.

Templates are Jinja2 with autoescaping; the annotation page's dynamic parts are built by
static/annotate.js with ``textContent`` only, so response text can never become markup.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape

from rlhfkit.feedback import projects, repo
from rlhfkit.feedback.auth import COOKIE, lookup, resolve
from rlhfkit.feedback.stats import project_stats

HERE = Path(__file__).parent
_env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
SECURITY_HEADERS = {
    # Defence in depth: even if markup slipped through, no inline script or foreign source runs.
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def render(template: str, status: int = 200, **ctx) -> HTMLResponse:
    return HTMLResponse(_env.get_template(template).render(**ctx), status_code=status, headers=SECURITY_HEADERS)


def _who(request: Request):
    """('admin', None) | ('annotator', Annotator) | (None, None), through the API's cached lookup."""
    p = lookup(request)
    if p is None:
        return None, None
    return ("admin", None) if p.admin else ("annotator", p.annotator)


def _error(status: int, message: str) -> HTMLResponse:
    return render("message.html", status=status, title={401: "Please log in", 403: "Not allowed",
                                                      404: "Not found"}.get(status, "Error"), message=message)


def _start_page(annotator) -> str:
    return "/review" if annotator.role == "reviewer" else "/annotate"  # the review page links to /annotate


def add_page_routes(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.get("/", include_in_schema=False)
    def home(request: Request):
        role, ann = _who(request)
        if role == "admin":
            return RedirectResponse("/admin", status_code=303)
        if role == "annotator":
            return RedirectResponse(_start_page(ann), status_code=303)
        return _error(401, "Open the login link your project admin gave you.")

    @app.get("/login", include_in_schema=False)
    def login(request: Request, token: str = ""):
        p = resolve(request, token)
        if p is None:
            return _error(401, "This login link is not valid (any more). Ask your project admin for a new one.")
        resp = RedirectResponse("/admin" if p.admin else _start_page(p.annotator), status_code=303)
        resp.set_cookie(COOKIE, token, httponly=True, samesite="lax", max_age=30 * 86400)
        return resp

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon():
        # Pages link /static/favicon.svg; browsers and tools that ask for /favicon.ico anyway
        # (the API docs, a bookmark) get the same icon instead of a 404 in every log.
        return FileResponse(HERE / "static" / "favicon.svg", media_type="image/svg+xml",
                            headers={"Cache-Control": "public, max-age=86400"})

    @app.get("/logout", include_in_schema=False)
    def logout():
        resp = RedirectResponse("/", status_code=303)
        resp.delete_cookie(COOKIE)
        return resp

    @app.get("/annotate", include_in_schema=False)
    def projects_page(request: Request):
        role, ann = _who(request)
        if role != "annotator":
            return _error(403 if role else 401, "This page is for annotators; use your login link.")
        with request.app.state.db.read() as s:
            mine = projects.visible_projects(s, ann)
        if len(mine) == 1:
            return RedirectResponse(f"/annotate/{mine[0].id}", status_code=303)
        return render("projects.html", name=ann.name, projects=mine, reviewer=ann.role == "reviewer")

    @app.get("/annotate/{project_id}", include_in_schema=False)
    def annotate_page(project_id: int, request: Request):
        role, ann = _who(request)
        if role != "annotator":
            return _error(403 if role else 401, "This page is for annotators; use your login link.")
        with request.app.state.db.read() as s:
            p = repo.find_project(s, project_id)
            if p is not None and not projects.can_see(s, p, ann):
                p = None  # archived or not a member: the same page as a missing project
        if p is None:
            return _error(404, f"There is no project {project_id}.")
        return render("annotate.html", name=ann.name, project=p)

    @app.get("/admin", include_in_schema=False)
    def admin_page(request: Request):
        role, _ = _who(request)
        if role != "admin":
            return _error(403 if role else 401, "The admin dashboard needs the admin login link.")
        with request.app.state.db.read() as s:
            stats = [project_stats(s, p) for p in repo.list_projects(s)]
        return render("admin.html", projects=stats)
