"""Management pages for the admin: a project's settings (archive, members, guidelines and worked
examples, delete) and the annotators (add with a login link, roles). Static markup plus
static/manage.js over the admin API, so the browser and the CLI change the same things."""

from __future__ import annotations

from fastapi import FastAPI, Request

from rlhfkit.feedback import projects, repo
from rlhfkit.feedback.pages import _error, _who, render


def add_admin_page_routes(app: FastAPI) -> None:
    @app.get("/admin/projects/{project_id}", include_in_schema=False)
    def manage_project(project_id: int, request: Request):
        role, _ann = _who(request)
        if role != "admin":
            return _error(403 if role else 401, "Managing projects needs the admin login link.")
        with request.app.state.db.read() as s:
            p = repo.find_project(s, project_id)
            if p is None:
                return _error(404, f"There is no project {project_id}.")
            members = projects.members(s, p)
            everyone = [a["name"] for a in repo.annotator_summaries(s)]
        return render("manage_project.html", project=p, members=members, annotators=everyone,
                      examples=p.examples or [])

    @app.get("/admin/annotators", include_in_schema=False)
    def manage_annotators(request: Request):
        role, _ann = _who(request)
        if role != "admin":
            return _error(403 if role else 401, "Managing annotators needs the admin login link.")
        with request.app.state.db.read() as s:
            rows = repo.annotator_summaries(s)
        return render("manage_annotators.html", annotators=rows)
