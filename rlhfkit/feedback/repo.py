"""Repository functions: every read and write the server and the CLI make, one transaction each.

The work model lives here: tokens (stored as SHA-256 hashes, shown once), projects, item import,
assignment with overlap, blindness, leases, gold items and a daily cap, and idempotent
submission. Functions take an open ``Session`` and raise ``FeedbackError`` subclasses that the
API maps to HTTP status codes.
"""

from __future__ import annotations

import hashlib
import random
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import and_, bindparam, exists, func, or_, select
from sqlalchemy.orm import Session

from rlhfkit.feedback.arena import check_arena_items
from rlhfkit.feedback.kinds import PER_RESPONSE_MODES, SubmittedJudgement, check_per_response
from rlhfkit.feedback.models import Annotator, Assignment, Item, Judgement, Project, Setting
from rlhfkit.schema import PreferenceItem

MODES = ("ranking", "pairwise", "rating", "binary", "arena")  # arena: pairwise between named policies
PAIRWISE_MODES = ("pairwise", "arena")
MAX_CONFIG_CHARS = 4_000  # an annotator_config as JSON: a description, not a data channel
_judgement_adapter: TypeAdapter = TypeAdapter(SubmittedJudgement)


class FeedbackError(Exception):
    status = 400


class NotFound(FeedbackError):
    status = 404


class Conflict(FeedbackError):
    status = 409


class Invalid(FeedbackError):
    status = 422


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


# ---------------------------------------------------------------- tokens


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_judgement_id() -> str:
    return secrets.token_hex(16)


def new_token() -> str:
    return secrets.token_urlsafe(24)


def rotate_admin_token(s: Session) -> str:
    token = "adm_" + new_token()
    row = s.get(Setting, "admin_token_hash")
    if row is None:
        s.add(Setting(key="admin_token_hash", value=hash_token(token)))
    else:
        row.value = hash_token(token)
    return token


def ensure_admin_token(s: Session) -> str | None:
    """Create the admin token if there is none; returns it when created (else None)."""
    if s.get(Setting, "admin_token_hash") is not None:
        return None
    return rotate_admin_token(s)


def is_admin_token(s: Session, token: str) -> bool:
    row = s.get(Setting, "admin_token_hash")
    return row is not None and secrets.compare_digest(row.value, hash_token(token))


def annotator_by_token(s: Session, token: str) -> Annotator | None:
    a = s.scalar(select(Annotator).where(Annotator.token_hash == hash_token(token)))
    return a if a is not None and a.active else None


def add_annotator(s: Session, name: str, role: str = "annotator") -> tuple[Annotator, str]:
    """A new annotator (role "annotator", or "reviewer": also adjudicates) and their token."""
    name = name.strip()
    if role not in ("annotator", "reviewer"):
        raise Invalid(f"role must be annotator or reviewer, not {role!r}")
    if not name or len(name) > 100:
        raise Invalid("annotator name must be 1-100 characters")
    if s.scalar(select(Annotator).where(Annotator.name == name)) is not None:
        raise Conflict(f"an annotator named {name!r} already exists")
    token = "ann_" + new_token()
    a = Annotator(name=name, token_hash=hash_token(token), active=True, created_at=utcnow(), role=role)
    s.add(a)
    s.flush()
    return a, token


def annotator_by_name(s: Session, name: str) -> Annotator:
    a = s.scalar(select(Annotator).where(Annotator.name == name))
    if a is None:
        raise NotFound(f"no annotator named {name!r}")
    return a


def new_annotator_token(s: Session, name: str) -> str:
    """Replace an annotator's token (a lost or leaked link); the old link stops working."""
    a = annotator_by_name(s, name)
    token = "ann_" + new_token()
    a.token_hash, a.active = hash_token(token), True
    return token


def annotator_summaries(s: Session) -> list[dict[str, Any]]:
    """Every annotator with their judgement count, oldest first."""
    counts = dict(s.execute(select(Judgement.annotator_id, func.count(Judgement.id))
                            .group_by(Judgement.annotator_id)).all())
    return [{"id": a.id, "name": a.name, "active": a.active, "role": a.role, "judgements": counts.get(a.id, 0)}
            for a in s.scalars(select(Annotator).order_by(Annotator.id))]


def set_annotator_active(s: Session, name: str, active: bool) -> None:
    annotator_by_name(s, name).active = active


# ---------------------------------------------------------------- projects and items


def create_project(
    s: Session,
    name: str,
    mode: str = "ranking",
    overlap: int = 3,
    lease_seconds: int = 900,
    gold_rate: float = 0.0,
    daily_cap: int | None = None,
    instructions: str = "",
) -> Project:
    if mode not in MODES:
        raise Invalid(f"mode must be one of {MODES}, got {mode!r}")
    if not name.strip() or len(name) > 200:
        raise Invalid("project name must be 1-200 characters")
    if overlap < 1 or lease_seconds < 1 or not 0 <= gold_rate <= 1 or (daily_cap is not None and daily_cap < 1):
        raise Invalid("overlap >= 1, lease_seconds >= 1, 0 <= gold_rate <= 1 and daily_cap >= 1 are required")
    if s.scalar(select(Project).where(Project.name == name)) is not None:
        raise Conflict(f"a project named {name!r} already exists")
    p = Project(
        name=name, mode=mode, overlap=overlap, lease_seconds=lease_seconds, gold_rate=gold_rate,
        daily_cap=daily_cap, order_by="random", instructions=instructions, created_at=utcnow(),
    )
    s.add(p)
    s.flush()
    return p


def list_projects(s: Session) -> list[Project]:
    return list(s.scalars(select(Project).order_by(Project.id)))


def find_project(s: Session, project_id: int) -> Project | None:
    return s.get(Project, project_id)


def project_or_create(s: Session, name: str, **settings: Any) -> Project:
    """The project called ``name``; created with ``settings`` when missing (else they are ignored)."""
    p = s.scalar(select(Project).where(Project.name == name))
    return p if p is not None else create_project(s, name, **settings)


def project_by_name(s: Session, name: str) -> Project:
    p = s.scalar(select(Project).where(Project.name == name))
    if p is None:
        raise NotFound(f"no project named {name!r}")
    return p


def get_project(s: Session, project_id: int) -> Project:
    p = s.get(Project, project_id)
    if p is None:
        raise NotFound(f"no project {project_id}")
    return p


def gold_answer_of(item: PreferenceItem) -> dict:
    """The known answer of a gold item: its first ranking or pairwise annotation."""
    for ann in item.annotations:
        if ann.judgement.kind in ("ranking", "pairwise"):
            return ann.judgement.model_dump()
    raise Invalid(f"gold item {item.id!r} has no ranking or pairwise annotation to use as its answer")


@dataclass
class ImportResult:
    added: int = 0  # new items
    skipped: int = 0  # items whose id the project already has (their annotations are not re-read)
    annotations: int = 0  # existing judgements imported with the new items


def import_items(
    s: Session, project: Project, items: list[tuple[PreferenceItem, str]], gold: bool = False
) -> ImportResult:
    """Add (item, source) pairs to a project; items whose id is already there are skipped.

    Gold items must carry their known answer as an annotation. Annotations of other items are
    existing judgements (another tool, offline labels): each becomes a judgement of the named
    annotator (created, inactive, if new), with its source, time and shown order, counted in
    statistics and exported like any other. One that cannot be kept raises ``Invalid``.
    """
    if project.mode == "arena":
        try:
            check_arena_items(items)
        except ValueError as e:
            raise Invalid(str(e)) from None
    existing = set(s.scalars(select(Item.external_id).where(Item.project_id == project.id)))
    result = ImportResult()
    now = utcnow()
    for item, source in items:
        if item.id in existing:
            result.skipped += 1
            continue
        existing.add(item.id)
        row = Item(
            project_id=project.id, external_id=item.id,
            prompt=item.model_dump(mode="json")["prompt"],
            responses=[r.model_dump(mode="json") for r in item.responses],
            item_metadata=item.metadata, source=source, is_gold=gold,
            gold_answer=gold_answer_of(item) if gold else None, disagreement=None, created_at=now,
        )
        s.add(row)
        result.added += 1
        if item.annotations and not gold:
            s.flush()  # the judgements need the item's id
            for n, ann in enumerate(item.annotations):
                try:
                    _import_judgement(s, project, row, ann, source, now)
                except Invalid as e:
                    raise Invalid(f"{source}: item {item.id!r}, annotations[{n}]: {e}") from None
            result.annotations += len(item.annotations)
    s.flush()
    return result


def imported_annotator(s: Session, name: str) -> Annotator:
    """The annotator called ``name``; a new one is inactive (no login link until
    ``rlhfkit annotators new-link NAME``)."""
    a = s.scalar(select(Annotator).where(Annotator.name == name))
    if a is None:
        if not name.strip() or len(name) > 100:
            raise Invalid("annotator_id must be 1-100 characters")
        a = Annotator(name=name, token_hash=hash_token(new_token()), active=False, created_at=utcnow())
        s.add(a)
        s.flush()
    return a


def _naive_utc(when: datetime | None, default: datetime) -> datetime:
    if when is None:
        return default
    return when.astimezone(timezone.utc).replace(tzinfo=None) if when.tzinfo else when


def _import_judgement(s: Session, project: Project, item: Item, ann: Any, origin: str, now: datetime) -> None:
    if not ann.annotator_id:
        raise Invalid("no annotator_id: an imported judgement must name its annotator (the app keeps "
                      "one judgement per annotator and item)")
    annotator = imported_annotator(s, ann.annotator_id)
    k = len(item.responses)
    raw = ann.judgement.model_dump()
    shown = list(ann.shown_order) if ann.shown_order is not None else list(range(k))
    if raw["kind"] == "pairwise" and ann.shown_order is None:  # A and B first, as the page shows them
        shown = [raw["a"], raw["b"]] + [i for i in range(k) if i not in (raw["a"], raw["b"])]
    clean = validate_judgement(project.mode, Assignment(shown_order=shown), raw)
    critiques, edit = validate_language_feedback(
        project.mode, Assignment(shown_order=shown), item.responses,
        [c.model_dump() for c in ann.response_critiques or []], ann.edit.model_dump() if ann.edit else None)
    if s.scalar(select(Assignment.id).where(Assignment.item_id == item.id, Assignment.annotator_id == annotator.id)):
        raise Invalid(f"a second judgement by {annotator.name!r} of the same item")
    if s.scalar(_MY_JUDGEMENT, {"annotator_id": annotator.id, "client_id": ann.id}) is not None:
        raise Invalid(f"{annotator.name!r} already has a judgement with id {ann.id!r}")
    if len(ann.id) > 64:
        raise Invalid("id is longer than 64 characters")
    when = _naive_utc(ann.created_at, now)
    asg = Assignment(project_id=project.id, item_id=item.id, annotator_id=annotator.id, shown_order=shown,
                     status="done", issued_at=when, expires_at=when, closed_at=when)
    s.add(asg)
    s.flush()
    s.add(Judgement(
        id=new_judgement_id(), client_id=ann.id, assignment_id=asg.id, project_id=project.id, item_id=item.id,
        annotator_id=annotator.id, judgement=clean, critique=(ann.critique or "").strip() or None,
        shown_order=shown, time_spent_s=ann.time_spent_s, server_time_s=ann.time_spent_s or 0.0,
        is_gold=False, created_at=when, source=ann.source, origin=origin,
        response_critiques=critiques, edit=edit,
    ))
    s.flush()


# ---------------------------------------------------------------- assignment


@dataclass
class NoWork:
    reason: str  # "done" (nothing left for you) | "daily_cap"


# The hot path (next item, submit) runs these statements on every request. They are built once,
# with bind parameters, instead of per call: building and cache-keying a SQLAlchemy statement
# costs about as much CPU as SQLite executing it, and tail latency is mostly CPU queueing.
_TAKEN = (  # per item: judgements made plus leases still running (the overlap budget in use)
    select(func.count(Assignment.id))
    .where(
        Assignment.item_id == Item.id,
        or_(Assignment.status == "done",
            and_(Assignment.status == "open", Assignment.expires_at > bindparam("now", type_=Assignment.expires_at.type))),
    )
    .correlate(Item)
    .scalar_subquery()
)
_TAKEN_OF_ITEM = select(_TAKEN).select_from(Item).where(Item.id == bindparam("item_id"))
_MINE = exists().where(Assignment.item_id == Item.id, Assignment.annotator_id == bindparam("annotator_id"))
_CANDIDATES = {
    gold: select(Item).where(Item.project_id == bindparam("project_id"), Item.is_gold == gold, ~_MINE,
                             *([] if gold else [_TAKEN < bindparam("overlap")]))
    for gold in (False, True)
}
_PICK = {  # (gold, part of the id range): the first eligible item at or after / before a start id
    (gold, after): q.where(Item.id >= bindparam("start") if after else Item.id < bindparam("start"))
    .order_by(Item.id).limit(1)
    for gold, q in _CANDIDATES.items() for after in (True, False)
}
_PICK_BY_DISAGREEMENT = _CANDIDATES[False].order_by(Item.disagreement.desc().nulls_last(), Item.id).limit(1)
_ID_RANGE = select(func.min(Item.id), func.max(Item.id)).where(
    Item.project_id == bindparam("project_id"), Item.is_gold == bindparam("gold"))
_OPEN_ASSIGNMENT = select(Assignment).where(
    Assignment.project_id == bindparam("project_id"), Assignment.annotator_id == bindparam("annotator_id"),
    Assignment.status == "open",
).order_by(Assignment.id).limit(1)
_MY_JUDGEMENTS = (Judgement.project_id == bindparam("project_id"), Judgement.annotator_id == bindparam("annotator_id"))
_PROGRESS = select(
    select(func.count(Judgement.id)).where(*_MY_JUDGEMENTS).scalar_subquery(),
    select(func.count(Judgement.id)).where(*_MY_JUDGEMENTS, Judgement.created_at >= bindparam("midnight"))
    .scalar_subquery(),
    select(func.count(Assignment.id)).where(
        Assignment.project_id == bindparam("project_id"), Assignment.annotator_id == bindparam("annotator_id"),
        Assignment.status == "skipped").scalar_subquery(),
)

_MY_JUDGEMENT = select(Judgement).where(Judgement.annotator_id == bindparam("annotator_id"),
                                        Judgement.client_id == bindparam("client_id"))
_MODE_AND_GOLD = select(Project.mode, Item.is_gold).join(Project, Project.id == Item.project_id).where(
    Item.id == bindparam("item_id"))


def _midnight(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def judged_today(s: Session, project: Project, annotator: Annotator, now: datetime) -> int:
    return progress(s, project, annotator, now)["today"]


def progress(s: Session, project: Project, annotator: Annotator, now: datetime | None = None) -> dict[str, Any]:
    """This annotator's counts in this project, in one statement."""
    now = now or utcnow()
    judged, today, skipped = s.execute(_PROGRESS, {"project_id": project.id, "annotator_id": annotator.id,
                                                   "midnight": _midnight(now)}).one()
    return {"judged": judged or 0, "skipped": skipped or 0, "today": today or 0, "daily_cap": project.daily_cap}


def _pick(
    s: Session, project: Project, annotator: Annotator, now: datetime, gold: bool, rng: random.Random
) -> Item | None:
    """Gold items are shown to everyone; regular ones to ``overlap`` people."""
    params = {"project_id": project.id, "annotator_id": annotator.id, "now": now, "overlap": project.overlap}
    if project.order_by == "disagreement" and not gold:
        return s.scalar(_PICK_BY_DISAGREEMENT, params)
    # Random order without sorting the whole table (ORDER BY random() evaluates the filters on
    # every item): start the id scan at a random point and wrap around. The scan stops at the
    # first eligible item, so the cost does not grow with the project.
    lo, hi = s.execute(_ID_RANGE, {"project_id": project.id, "gold": gold}).one()
    if lo is None:
        return None
    params["start"] = rng.randint(lo, hi)
    return s.scalar(_PICK[gold, True], params) or s.scalar(_PICK[gold, False], params)


def _resume(s: Session, project: Project, annotator: Annotator, now: datetime) -> Assignment | None:
    """The annotator's open assignment, its lease renewed if the item still has room."""
    a = s.scalar(_OPEN_ASSIGNMENT, {"project_id": project.id, "annotator_id": annotator.id})
    if a is None:
        return None
    if a.expires_at <= now:
        item = s.get(Item, a.item_id)
        taken = s.scalar(_TAKEN_OF_ITEM, {"item_id": item.id, "now": now})
        if not item.is_gold and taken >= project.overlap:
            a.status, a.closed_at = "expired", now
            return None
        a.expires_at = now + timedelta(seconds=project.lease_seconds)
    return a


def next_assignment(
    s: Session, project: Project, annotator: Annotator, rng: random.Random | None = None,
    now: datetime | None = None,
) -> Assignment | NoWork:
    """Lease the next item for this annotator (or return why there is none)."""
    rng = rng or random.SystemRandom()
    now = now or utcnow()
    if s.get_bind().dialect.name != "sqlite":  # SQLite's BEGIN IMMEDIATE already serialises
        # Serialise assignment per project, so two annotators cannot both take the last slot.
        # FOR NO KEY UPDATE, not FOR UPDATE: it still excludes other leases, but not the KEY SHARE
        # lock that every submission's foreign-key check takes on the project row, so submits do
        # not queue behind the lease in flight.
        s.execute(select(Project.id).where(Project.id == project.id).with_for_update(key_share=True))
    resumed = _resume(s, project, annotator, now)
    if resumed is not None:
        return resumed
    if project.daily_cap is not None and judged_today(s, project, annotator, now) >= project.daily_cap:
        return NoWork("daily_cap")
    item = _pick(s, project, annotator, now, gold=False, rng=rng)
    if item is None:
        return NoWork("done")
    if project.gold_rate > 0 and rng.random() < project.gold_rate:
        item = _pick(s, project, annotator, now, gold=True, rng=rng) or item
    k = len(item.responses)
    a = Assignment(
        project_id=project.id, item_id=item.id, annotator_id=annotator.id,
        shown_order=rng.sample(range(k), k), status="open", issued_at=now,
        expires_at=now + timedelta(seconds=project.lease_seconds),
    )
    s.add(a)
    s.flush()
    return a


def own_assignment(s: Session, annotator: Annotator, assignment_id: int) -> Assignment:
    """The assignment if it is this annotator's; another's is reported as missing (404)."""
    a = s.get(Assignment, assignment_id, with_for_update=True)
    if a is None or a.annotator_id != annotator.id:
        raise NotFound(f"no assignment {assignment_id} for you")
    return a


# ---------------------------------------------------------------- submission


def validate_judgement(mode: str, assignment: Assignment, raw: dict) -> dict:
    """Parse a judgement against the schema, the project mode and the item; original indices.
    The assignment's shown order is a permutation of the item's K responses, so it gives K."""
    k = len(assignment.shown_order)
    try:
        j = _judgement_adapter.validate_python(raw)
    except ValidationError as e:
        raise Invalid(f"judgement: {e.errors()[0]['msg']} at {list(e.errors()[0]['loc'])}") from None
    if mode == "ranking":
        if j.kind == "ranking":
            if sorted(i for t in j.tiers for i in t) != list(range(k)):
                raise Invalid(f"a ranking must place every response 0..{k - 1} exactly once")
        elif j.kind != "all_bad":
            raise Invalid(f"this project collects rankings, not {j.kind!r} judgements")
    elif mode in PER_RESPONSE_MODES:
        if j.kind != "per_response":
            raise Invalid(f"this project collects a {PER_RESPONSE_MODES[mode]} of every response: send "
                          "{\"kind\": \"per_response\", \"judgements\": [...]}" + f", not {j.kind!r}")
        problem = check_per_response(mode, j, k)
        if problem:
            raise Invalid(problem)
    else:
        if j.kind != "pairwise":
            raise Invalid(f"this project collects pairwise judgements, not {j.kind!r}")
        shown = assignment.shown_order[:2]
        if [j.a, j.b] != shown:
            raise Invalid(f"pairwise a/b must be the responses shown, {shown}")
    return j.model_dump()


def validate_language_feedback(
    mode: str, assignment: Assignment, responses: list[dict], critiques: list[dict] | None, edit: dict | None,
) -> tuple[list[dict] | None, dict | None]:
    """Response critiques and an edit, checked against the item: (critiques or None, edit or None).

    Indices are original response indices and must be ones the annotator was shown (pairwise
    and arena: A and B). Whitespace-only critiques are no critique; one critique per response; an edit
    identical to the response it rewrites is refused (it says nothing)."""
    shown = assignment.shown_order[:2] if mode in PAIRWISE_MODES else assignment.shown_order
    kept: list[dict] = []
    for n, c in enumerate(critiques or []):
        if c["response"] not in shown:
            raise Invalid(f"response_critiques[{n}]: response {c['response']} was not shown ({shown})")
        if any(k["response"] == c["response"] for k in kept):
            raise Invalid(f"response_critiques[{n}]: a second critique of response {c['response']}")
        if c["text"].strip():
            kept.append({"response": c["response"], "text": c["text"].strip()})
    if edit is not None:
        if edit["response"] not in shown:
            raise Invalid(f"edit: response {edit['response']} was not shown ({shown})")
        if not edit["text"].strip():
            raise Invalid("edit: the edited text is empty")
        if edit["text"].strip() == responses[edit["response"]]["text"].strip():
            raise Invalid("edit: the text is identical to the response it rewrites")
        edit = {"response": edit["response"], "text": edit["text"]}
    return kept or None, edit


def submit(
    s: Session, annotator: Annotator, assignment_id: int, judgement_id: str, judgement: dict,
    critique: str | None = None, time_spent_s: float | None = None, now: datetime | None = None,
    source: str = "human", annotator_config: dict | None = None,
    response_critiques: list[dict] | None = None, edit: dict | None = None,
) -> tuple[Judgement, bool]:
    """Record a judgement; returns (row, created). A retry with the same id is a no-op.
    ``source`` and ``annotator_config`` say who made it (a simulated annotator, a model judge);
    ``response_critiques`` and ``edit`` are language feedback (``validate_language_feedback``)."""
    now = now or utcnow()
    critique = (critique or "").strip() or None  # whitespace only is no critique
    a = own_assignment(s, annotator, assignment_id)  # row-locked on PostgreSQL
    # Looked up after the lock: a concurrent retry of the same id that waited on it must see the
    # first one's committed row and answer "already stored", not "assignment already done".
    # Ids are scoped per annotator: another annotator's use of the same id is invisible here.
    prior = s.scalar(_MY_JUDGEMENT, {"annotator_id": annotator.id, "client_id": judgement_id})
    if prior is not None:
        if prior.assignment_id != assignment_id:
            raise Conflict(f"you already used judgement id {judgement_id!r} for another submission")
        return prior, False
    if a.status != "open":
        raise Conflict(f"assignment {assignment_id} is already {a.status}")
    mode, is_gold = s.execute(_MODE_AND_GOLD, {"item_id": a.item_id}).one()
    clean = validate_judgement(mode, a, judgement)
    critiques = None
    if response_critiques or edit:
        critiques, edit = validate_language_feedback(mode, a, s.get(Item, a.item_id).responses,
                                                     response_critiques, edit)
    row = Judgement(
        id=new_judgement_id(), client_id=judgement_id, assignment_id=a.id, project_id=a.project_id, item_id=a.item_id,
        annotator_id=annotator.id, judgement=clean, critique=critique,
        shown_order=a.shown_order, time_spent_s=time_spent_s,
        server_time_s=max(0.0, (now - a.issued_at).total_seconds()), is_gold=is_gold, created_at=now,
        source=source, annotator_config=annotator_config, response_critiques=critiques, edit=edit,
    )
    a.status, a.closed_at = "done", now
    s.add(row)
    s.flush()
    return row, True


def skip(s: Session, annotator: Annotator, assignment_id: int, reason: str, now: datetime | None = None) -> Assignment:
    a = own_assignment(s, annotator, assignment_id)
    if a.status == "skipped":
        return a  # a retried skip is a no-op
    if a.status != "open":
        raise Conflict(f"assignment {assignment_id} is already {a.status}")
    a.status, a.skip_reason, a.closed_at = "skipped", reason, now or utcnow()
    return a


def own_judgement(s: Session, annotator: Annotator, judgement_id: str) -> Judgement:
    j = s.scalar(_MY_JUDGEMENT, {"annotator_id": annotator.id, "client_id": judgement_id})
    if j is None:
        raise NotFound(f"no judgement {judgement_id!r} of yours")
    return j


def retract(s: Session, annotator: Annotator, judgement_id: str, now: datetime | None = None) -> Assignment:
    """Undo a submitted judgement: delete it and reopen its assignment with a fresh lease."""
    now = now or utcnow()
    j = own_judgement(s, annotator, judgement_id)
    a = s.get(Assignment, j.assignment_id)
    project = s.get(Project, a.project_id)
    s.delete(j)
    a.status, a.closed_at = "open", None
    a.issued_at, a.expires_at = now, now + timedelta(seconds=project.lease_seconds)
    s.flush()
    return a


def assignment_view(s: Session, a: Assignment) -> dict[str, Any]:
    """What the annotator sees: responses in shown order, no other annotator's judgement."""
    project = s.get(Project, a.project_id)
    item = s.get(Item, a.item_id)
    order = a.shown_order[:2] if project.mode in PAIRWISE_MODES else a.shown_order
    return {
        "assignment_id": a.id,
        "project_id": project.id,
        # an arena item is judged as a pairwise one; the policies' names are never sent
        "mode": "pairwise" if project.mode == "arena" else project.mode,
        "prompt": item.prompt,
        # "empty": an empty response imported flagged; the page shows "(empty response)"
        "responses": [{"index": i, "text": item.responses[i]["text"], "empty": not item.responses[i]["text"].strip()}
                      for i in order],
        "shown_order": a.shown_order,
        "expires_at": a.expires_at.isoformat() + "Z",
    }
