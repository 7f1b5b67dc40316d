"""Team management of projects: who may see them, archive and delete, guidelines, progress.

Visibility rule: an annotator sees a project when it is not archived and, if it is
members-only, they are a member. Adding the first member makes a project members-only (and it
stays so when the last member leaves: emptying a member list must not open it to everyone).
Archived projects keep their data and export; delete removes the project with its items,
assignments, judgements and adjudications. Functions take an open ``Session`` and raise the
``repo`` errors (404 for a project an annotator may not see, so ids cannot be probed).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, exists, func, select
from sqlalchemy.orm import Session

from rlhfkit.feedback import repo
from rlhfkit.feedback.models import Adjudication, Annotator, Assignment, Item, Judgement, Project, ProjectMember

MAX_EXAMPLES = 20
ROLES = ("annotator", "reviewer")


def _member(project_id: int, annotator_id: int):
    return exists().where(ProjectMember.project_id == project_id, ProjectMember.annotator_id == annotator_id)


def can_see(s: Session, project: Project, annotator: Annotator) -> bool:
    if project.archived:
        return False
    return not project.members_only or bool(s.scalar(select(_member(project.id, annotator.id))))


def visible_projects(s: Session, annotator: Annotator) -> list[Project]:
    mine = exists().where(ProjectMember.project_id == Project.id, ProjectMember.annotator_id == annotator.id)
    return list(s.scalars(select(Project).where(~Project.archived, ~Project.members_only | mine).order_by(Project.id)))


def visible_project(s: Session, project_id: int, annotator: Annotator) -> Project:
    """The project if this annotator may work on it; otherwise 404 (as if it did not exist)."""
    p = s.get(Project, project_id)
    if p is None or not can_see(s, p, annotator):
        raise repo.NotFound(f"no project {project_id} for you")
    return p


def members(s: Session, project: Project) -> list[str]:
    return list(s.scalars(select(Annotator.name).join(ProjectMember, ProjectMember.annotator_id == Annotator.id)
                          .where(ProjectMember.project_id == project.id).order_by(Annotator.name)))


def set_members(s: Session, project: Project, add: list[str] = (), remove: list[str] = ()) -> list[str]:
    """Add and remove members by name (unknown names are a 404); returns the member list."""
    for name in add:
        a = repo.annotator_by_name(s, name)
        if s.get(ProjectMember, (project.id, a.id)) is None:
            s.add(ProjectMember(project_id=project.id, annotator_id=a.id))
        project.members_only = True
    for name in remove:
        a = repo.annotator_by_name(s, name)
        row = s.get(ProjectMember, (project.id, a.id))
        if row is not None:
            s.delete(row)
    s.flush()
    return members(s, project)


def check_examples(examples: Any) -> list[dict[str, Any]]:
    """Worked examples: [{prompt, responses: [text, ...], answer, why?}], at most MAX_EXAMPLES."""
    if not isinstance(examples, list) or len(examples) > MAX_EXAMPLES:
        raise repo.Invalid(f"examples must be a list of at most {MAX_EXAMPLES} worked examples")
    out = []
    for n, ex in enumerate(examples):
        if not isinstance(ex, dict) or set(ex) - {"prompt", "responses", "answer", "why"}:
            raise repo.Invalid(f"examples[{n}]: expected an object with prompt, responses, answer and why")
        prompt, responses, answer, why = ex.get("prompt"), ex.get("responses"), ex.get("answer"), ex.get("why", "")
        if not isinstance(prompt, str) or not prompt.strip() or len(prompt) > 20_000:
            raise repo.Invalid(f"examples[{n}].prompt must be 1-20,000 characters")
        if (not isinstance(responses, list) or not 1 <= len(responses) <= 9
                or not all(isinstance(r, str) and len(r) <= 20_000 for r in responses)):
            raise repo.Invalid(f"examples[{n}].responses must be 1-9 texts of at most 20,000 characters")
        for field, value in (("answer", answer), ("why", why)):
            if not isinstance(value, str) or len(value) > 5_000 or (field == "answer" and not value.strip()):
                raise repo.Invalid(f"examples[{n}].{field} must be text of at most 5,000 characters"
                                   + (" (not empty)" if field == "answer" else ""))
        if any("\x00" in t for t in (prompt, answer, why, *responses)):
            raise repo.Invalid(f"examples[{n}]: text must not contain NUL characters")
        out.append({"prompt": prompt, "responses": responses, "answer": answer, "why": why})
    return out


def update_project(s: Session, project: Project, **changes: Any) -> Project:
    """Change a project's editable settings: instructions, examples, archived, members_only."""
    allowed = {"instructions", "examples", "archived", "members_only"}
    unknown = set(changes) - allowed
    if unknown:
        raise repo.Invalid(f"cannot change {sorted(unknown)}; editable: {sorted(allowed)}")
    if "examples" in changes:
        changes["examples"] = check_examples(changes["examples"])
    for key, value in changes.items():
        setattr(project, key, value)
    s.flush()
    return project


def content_counts(s: Session, project: Project) -> dict[str, int]:
    """Items and judgements in a project (what a delete would remove)."""
    return {
        "items": s.scalar(select(func.count(Item.id)).where(Item.project_id == project.id)) or 0,
        "judgements": s.scalar(select(func.count(Judgement.id)).where(Judgement.project_id == project.id)) or 0,
    }


def delete_project(s: Session, project: Project) -> dict[str, int]:
    """Delete a project and everything in it; returns the counts removed."""
    pid = project.id
    counts = content_counts(s, project)
    for model in (Adjudication, Judgement, Assignment, Item, ProjectMember):
        s.execute(delete(model).where(model.project_id == pid))
    s.delete(project)
    s.flush()
    return counts


def annotator_progress(s: Session, project: Project, annotator: Annotator) -> dict[str, Any]:
    """Done and remaining for one annotator: remaining counts the regular items they could still
    be given (not seen by them, fewer than ``overlap`` judgements or running leases), plus their
    open assignment. Computed on request, not on every ``next`` (it scans the project)."""
    now = repo.utcnow()
    params = {"project_id": project.id, "annotator_id": annotator.id, "now": now, "overlap": project.overlap}
    available = s.scalar(select(func.count()).select_from(repo._CANDIDATES[False].subquery()), params) or 0
    open_mine = s.scalar(select(func.count(Assignment.id)).join(Item, Item.id == Assignment.item_id).where(
        Assignment.project_id == project.id, Assignment.annotator_id == annotator.id,
        Assignment.status == "open", ~Item.is_gold)) or 0
    done = repo.progress(s, project, annotator, now)
    return {**done, "done": done["judged"], "remaining": available + open_mine}
