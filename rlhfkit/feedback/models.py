"""SQLAlchemy 2 models of the annotation database.

The schema is created and changed only by the Alembic migrations in ``migrations/`` (applied on
startup by ``db.open_database``); a test checks that the migrations and these models agree.
Times are naive UTC datetimes: SQLite keeps no time zone, and one convention on both backends
keeps SQL comparisons (lease expiry, daily caps) correct.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Setting(Base):
    """Key/value server settings; holds the admin token's hash."""

    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    mode: Mapped[str] = mapped_column(String(16), default="ranking")  # ranking | pairwise
    overlap: Mapped[int] = mapped_column(Integer, default=3)
    lease_seconds: Mapped[int] = mapped_column(Integer, default=900)
    gold_rate: Mapped[float] = mapped_column(Float, default=0.0)
    daily_cap: Mapped[int | None] = mapped_column(Integer, nullable=True)
    order_by: Mapped[str] = mapped_column(String(16), default="random")  # random | disagreement
    instructions: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime)
    # Team settings (migration 0004): archived projects are hidden from annotators (export still
    # works); a members-only project is shown to its members alone; worked examples are shown
    # with the guidelines before an annotator's first item and under the "?" key.
    archived: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    members_only: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    examples: Mapped[Any] = mapped_column(JSON, nullable=True)


class ProjectMember(Base):
    """An annotator allowed into a members-only project."""

    __tablename__ = "project_members"
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), primary_key=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id"), primary_key=True)


class Item(Base):
    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("project_id", "external_id", name="uq_items_project_external"),
        Index("ix_items_project_gold", "project_id", "is_gold"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    external_id: Mapped[str] = mapped_column(String(200))  # PreferenceItem.id
    prompt: Mapped[Any] = mapped_column(JSON)  # str or list of chat messages
    responses: Mapped[Any] = mapped_column(JSON)  # list of Response dicts
    item_metadata: Mapped[Any] = mapped_column("metadata", JSON, default=dict)
    source: Mapped[str] = mapped_column(String(500), default="")  # file:line it came from
    is_gold: Mapped[bool] = mapped_column(Boolean, default=False)
    gold_answer: Mapped[Any] = mapped_column(JSON, nullable=True)  # a schema judgement dict
    disagreement: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class Annotator(Base):
    __tablename__ = "annotators"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    role: Mapped[str] = mapped_column(String(16), default="annotator", server_default="annotator")  # | reviewer


class Assignment(Base):
    """An item handed to one annotator: the lease, the shown order, and its outcome.

    One row per (item, annotator) ever: the unique constraint is what guarantees that an
    annotator never gets the same item twice.
    """

    __tablename__ = "assignments"
    __table_args__ = (
        UniqueConstraint("item_id", "annotator_id", name="uq_assignments_item_annotator"),
        Index("ix_assignments_annotator_status", "annotator_id", "status"),
        Index("ix_assignments_item_status", "item_id", "status"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"))
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id"))
    shown_order: Mapped[Any] = mapped_column(JSON)  # permutation of 0..K-1, display order
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | done | skipped
    skip_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    issued_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class Judgement(Base):
    """One judgement, submitted here or imported. ``client_id`` is generated by the client and
    unique per annotator: a retry with it is a no-op, and another annotator's ids stay invisible."""

    __tablename__ = "judgements"
    __table_args__ = (
        Index("ix_judgements_project_created", "project_id", "created_at"),
        Index("uq_judgements_annotator_client", "annotator_id", "client_id", unique=True),
    )
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # server id
    client_id: Mapped[str] = mapped_column(String(64))
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id"), unique=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"))
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id"))
    judgement: Mapped[Any] = mapped_column(JSON)  # a schema judgement dict, original indices
    critique: Mapped[str | None] = mapped_column(Text, nullable=True)
    shown_order: Mapped[Any] = mapped_column(JSON)
    time_spent_s: Mapped[float | None] = mapped_column(Float, nullable=True)  # client-reported
    server_time_s: Mapped[float] = mapped_column(Float)  # issue -> submit, measured here
    is_gold: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    source: Mapped[str] = mapped_column(String(16), default="human", server_default="human")  # schema.Source
    origin: Mapped[str | None] = mapped_column(String(500), nullable=True)  # file:line if imported
    # What shaped a non-human label (a simulated annotator's noise and biases, a judge's prompt and
    # model): sent with the judgement, at most MAX_CONFIG_CHARS of JSON, exported with the item.
    annotator_config: Mapped[Any] = mapped_column(JSON, nullable=True)
    # language feedback (schema.ResponseCritique list / ResponseEdit), original indices; null if none
    # (migration 0006)
    response_critiques: Mapped[Any] = mapped_column(JSON, nullable=True)
    edit: Mapped[Any] = mapped_column(JSON, nullable=True)


class Adjudication(Base):
    """A reviewer's final label for an item (migration 0005). The export prefers it to the
    annotators' judgements, which are kept unchanged; one per item, replaced on re-review."""

    __tablename__ = "adjudications"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), unique=True)
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("annotators.id"))
    judgement: Mapped[Any] = mapped_column(JSON)  # a schema judgement dict, original indices
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
