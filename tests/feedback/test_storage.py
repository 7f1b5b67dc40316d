"""Storage: the shipped migrations build exactly the models' schema; SQLite settings; secrets hashed."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from rlhfkit.feedback import repo
from rlhfkit.feedback.db import Database, database_url
from rlhfkit.feedback.models import Base


def test_migrations_match_models(tmp_path):
    db = Database(str(tmp_path / "f.db"))
    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        assert conn.execute(text("select version_num from alembic_version")).scalar() == "0001"
    db.close()
    Database(str(tmp_path / "f.db")).close()  # opening again is a no-op upgrade


def test_sqlite_runs_in_wal_with_full_sync(tmp_path):
    db = Database(str(tmp_path / "f.db"))
    with db.read() as s:
        assert s.execute(text("pragma journal_mode")).scalar() == "wal"
        assert s.execute(text("pragma synchronous")).scalar() == 2  # FULL
        assert s.execute(text("pragma foreign_keys")).scalar() == 1
    db.close()


def test_tokens_are_stored_hashed(tmp_path):
    path = tmp_path / "f.db"
    db = Database(str(path))
    with db.session() as s:
        admin = repo.ensure_admin_token(s)
        _a, token = repo.add_annotator(s, "alice")
        assert repo.ensure_admin_token(s) is None  # created once
    with db.read() as s:
        assert repo.is_admin_token(s, admin) and not repo.is_admin_token(s, token)
        assert repo.annotator_by_token(s, token).name == "alice"
    db.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert admin.encode() not in raw and token.encode() not in raw
    assert repo.hash_token(token).encode() in raw


def test_database_url():
    assert database_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert database_url("rel/feedback.db").startswith("sqlite:////") and database_url("x.db").endswith("/x.db")
