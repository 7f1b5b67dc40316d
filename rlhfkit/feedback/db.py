"""Opening the annotation database: SQLite (WAL) by path, PostgreSQL by URL, migrated on open.

SQLite notes. WAL lets readers run beside the one writer; ``synchronous=FULL`` makes every
acknowledged commit survive a power cut, not only a process kill. Handing out an item (a lease)
is no promise to anyone, so ``session(durable=False)`` commits it without waiting for the disk
(SQLite ``synchronous=NORMAL``, PostgreSQL ``synchronous_commit=off``): the log is written in
order, so the next durable commit (an acknowledged judgement) flushes the lease with it, and a
killed server loses neither; only a power cut can lose a lease, and then its item is handed out
again. This halves the fsyncs on the hot path, and each was made while holding the write lock. Every transaction starts with
``BEGIN IMMEDIATE`` so the read-then-write steps of assignment and submission are serialised by
SQLite's write lock instead of failing late with "database is locked"; ``busy_timeout`` makes
waiting writers queue rather than error.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def database_url(db: str) -> str:
    """A SQLAlchemy URL from a path (SQLite) or a URL passed through (``postgresql+psycopg://``)."""
    if "://" in db:
        return db
    return f"sqlite:///{Path(db).expanduser().resolve()}"


def make_engine(db: str, synchronous: str = "FULL", immediate: bool = True) -> Engine:
    url = database_url(db)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 60})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # noqa: ANN001
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={synchronous}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn):  # noqa: ANN001
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def upgrade(engine: Engine) -> None:
    """Apply the packaged Alembic migrations up to head (idempotent)."""
    import logging

    logging.getLogger("alembic").setLevel(logging.WARNING)  # plugin and "Context impl" chatter on every open
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


class Database:
    """An engine plus a session factory; ``session()`` is one transaction."""

    def __init__(self, db: str, migrate: bool = True, synchronous: str = "FULL"):
        self.url = database_url(db)
        self.engine = make_engine(db, synchronous=synchronous)
        if migrate:
            upgrade(self.engine)
        self._factory = sessionmaker(self.engine, expire_on_commit=False)
        # SQLite cannot change synchronous inside a transaction: non-durable writes use their own
        # connections (still serialised with the others by _write_lock).
        self._lease_factory = (sessionmaker(make_engine(db, synchronous="NORMAL"), expire_on_commit=False)
                               if self.is_sqlite else self._factory)
        self._write_lock = threading.Lock()
        # Reads (auth, stats, export) on SQLite use a second engine with deferred BEGIN, so they
        # read a WAL snapshot without queueing for the write lock.
        self.read_engine = make_engine(db, synchronous=synchronous, immediate=False) if self.is_sqlite else self.engine
        self._read_factory = sessionmaker(self.read_engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    @contextmanager
    def session(self, durable: bool = True) -> Iterator[Session]:
        """One read-write transaction. On SQLite, writers in this process queue on a lock first:
        SQLite's own busy handler polls with sleeps of up to 100 ms, which ruins tail latency.
        ``durable=False``: the commit does not wait for the disk (see the module docstring); only
        for writes that were promised to nobody, never for a judgement."""
        if self.is_sqlite:
            with self._write_lock, (self._factory if durable else self._lease_factory)() as s, s.begin():
                yield s
        else:
            with self._factory() as s, s.begin():
                if not durable:
                    s.execute(text("SET LOCAL synchronous_commit TO OFF"))
                yield s

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A transaction for reading only (a snapshot; never takes SQLite's write lock)."""
        with self._read_factory() as s, s.begin():
            yield s

    def close(self) -> None:
        self.engine.dispose()
        self.read_engine.dispose()
        if self.is_sqlite:
            self._lease_factory.kw["bind"].dispose()


def open_database(db: str, migrate: bool = True) -> Database:
    return Database(db, migrate=migrate)
