"""The reviewer's pages: a project list and the review page (queue, judgements side by side,
adjudication form). The page is static markup plus static/review.js over the review API."""

from __future__ import annotations

from fastapi import FastAPI, Request

from rlhfkit.feedback import projects
from rlhfkit.feedback.models import Project
from rlhfkit.feedback.pages import _error, _who, render


def _reviewer(request: Request):
    role, ann = _who(request)
    if role != "annotator" or ann.role != "reviewer":
        return None, _error(403 if role else 401, "The review pages need a reviewer's login link.")
    return ann, None


def add_review_page_routes(app: FastAPI) -> None:
    @app.get("/review", include_in_schema=False)
    def review_home(request: Request):
        ann, err = _reviewer(request)
        if err:
            return err
        with request.app.state.db.read() as s:
            mine = projects.visible_projects(s, ann)
        return render("review_projects.html", name=ann.name, projects=mine)

    @app.get("/review/{project_id}", include_in_schema=False)
    def review_page(project_id: int, request: Request):
        ann, err = _reviewer(request)
        if err:
            return err
        with request.app.state.db.read() as s:
            p = s.get(Project, project_id)
            if p is None or not projects.can_see(s, p, ann):
                return _error(404, f"There is no project {project_id}.")
        return render("review.html", name=ann.name, project=p)
