"""Storage: the shipped migrations build exactly the models' schema; SQLite settings; secrets hashed."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from rlhfkit.feedback import repo
from rlhfkit.feedback.db import Database, database_url
from rlhfkit.feedback.models import Base
from tests.feedback.conftest import make_items


def test_migrations_match_models(tmp_path):
    db = Database(str(tmp_path / "f.db"))
    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        assert conn.execute(text("select version_num from alembic_version")).scalar() == "0006"
    db.close()
    Database(str(tmp_path / "f.db")).close()  # opening again is a no-op upgrade


def test_sqlite_runs_in_wal_with_full_sync(tmp_path):
    db = Database(str(tmp_path / "f.db"))
    with db.read() as s:
        assert s.execute(text("pragma journal_mode")).scalar() == "wal"
        assert s.execute(text("pragma synchronous")).scalar() == 2  # FULL
        assert s.execute(text("pragma foreign_keys")).scalar() == 1
    db.close()


def test_only_non_durable_sessions_skip_the_fsync(tmp_path):
    # a lease commits with NORMAL (no fsync of its own); everything else keeps the configured level
    for configured, level in (("FULL", 2), ("NORMAL", 1)):
        db = Database(str(tmp_path / f"{configured}.db"), synchronous=configured)
        with db.session() as s:
            assert s.connection().exec_driver_sql("pragma synchronous").scalar() == level
        with db.session(durable=False) as s:
            assert s.connection().exec_driver_sql("pragma synchronous").scalar() == 1  # NORMAL
        with db.session() as s:  # the pooled durable connection was not changed by the lease
            assert s.connection().exec_driver_sql("pragma synchronous").scalar() == level
        db.close()


def test_submit_is_durable_and_only_next_is_not(env, monkeypatch):
    """Which requests may skip the fsync: handing out an item only; a judgement never."""
    asked, real = [], env.db.session

    def spy(durable=True):
        asked.append(durable)
        return real(durable)

    monkeypatch.setattr(env.db, "session", spy)
    pid = env.project(items=make_items(2))
    asked.clear()
    a = env.next("alice", pid)["assignment"]
    assert asked == [False]
    asked.clear()
    body = {"id": "d1", "judgement": {"kind": "ranking", "tiers": [[0], [1], [2]]}}
    r = env.client.post(f"/api/assignments/{a['assignment_id']}/judgement", json=body, headers=env.hdr("alice"))
    assert r.status_code == 201 and asked == [True]
    asked.clear()
    a = env.next("alice", pid)["assignment"]
    r = env.client.post(f"/api/assignments/{a['assignment_id']}/skip", json={"reason": "x"}, headers=env.hdr("alice"))
    assert r.status_code == 200 and asked == [False, True]


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


def test_upgrade_from_0001_keeps_judgements_and_their_ids(tmp_path):
    """A database made before per-annotator ids: its judgement ids become their client ids."""
    from alembic import command
    from alembic.config import Config

    from rlhfkit.feedback.db import MIGRATIONS_DIR, make_engine

    path = str(tmp_path / "old.db")
    engine = make_engine(path)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        conn.execute(text("insert into projects values (1, 'p', 'ranking', 1, 900, 0, null, 'random', '', '2026-01-01')"))
        conn.execute(text("insert into items values (1, 1, 'i', '\"q\"', '[]', '{}', 's', 0, null, null, '2026-01-01')"))
        conn.execute(text("insert into annotators values (1, 'a', 'h', 1, '2026-01-01')"))
        conn.execute(text("insert into assignments values (1, 1, 1, 1, '[0, 1]', 'done', null, '2026-01-01', '2026-01-01', null)"))
        conn.execute(text("insert into judgements values ('old-id', 1, 1, 1, 1, '{\"kind\": \"all_bad\"}', null, '[0, 1]', "
                          "null, 1.0, 0, '2026-01-01')"))
    engine.dispose()
    db = Database(path)
    with db.read() as s:
        row = s.execute(text("select id, client_id, source, origin from judgements")).one()
    assert tuple(row) == ("old-id", "old-id", "human", None)
    db.close()


def _upgrade_to(path: str, revision: str):
    from alembic import command
    from alembic.config import Config

    from rlhfkit.feedback.db import MIGRATIONS_DIR, make_engine

    engine = make_engine(path)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    return engine


def _columns(db: Database, table: str) -> set[str]:
    return {c["name"] for c in inspect(db.engine).get_columns(table)}


def test_upgrade_from_the_language_feedback_0003_head(tmp_path):
    """A database made when language feedback was revision 0003 (on 0002): stamped "0003" with
    response_critiques and edit but no annotator_config. It must reach head with the models'
    schema and keep its critiques and edits."""
    path = str(tmp_path / "ilf.db")
    engine = _upgrade_to(path, "0002")
    with engine.begin() as conn:  # what that 0003 did, then its stamp
        conn.execute(text("alter table judgements add column response_critiques JSON"))
        conn.execute(text("alter table judgements add column edit JSON"))
        conn.execute(text("update alembic_version set version_num = '0003'"))
        conn.execute(text("insert into projects values (1, 'p', 'ranking', 1, 900, 0, null, 'random', '', '2026-01-01')"))
        conn.execute(text("insert into items values (1, 1, 'i', '\"q\"', '[]', '{}', 's', 0, null, null, '2026-01-01')"))
        conn.execute(text("insert into annotators values (1, 'a', 'h', 1, '2026-01-01')"))
        conn.execute(text("insert into assignments values (1, 1, 1, 1, '[0, 1]', 'done', null, '2026-01-01', '2026-01-01', null)"))
        conn.execute(text(
            "insert into judgements (id, client_id, assignment_id, project_id, item_id, annotator_id, judgement, "
            "critique, shown_order, time_spent_s, server_time_s, is_gold, created_at, source, origin, "
            "response_critiques, edit) values ('j1', 'j1', 1, 1, 1, 1, '{\"kind\": \"all_bad\"}', null, '[0, 1]', "
            "null, 1.0, 0, '2026-01-01', 'human', null, '[{\"response\": 1, \"text\": \"too long\"}]', "
            "'{\"response\": 0, \"text\": \"short\"}')"))
    engine.dispose()
    db = Database(path)
    assert {"annotator_config", "response_critiques", "edit"} <= _columns(db, "judgements")
    assert "adjudications" in inspect(db.engine).get_table_names()
    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        assert conn.execute(text("select version_num from alembic_version")).scalar() == "0006"
        row = conn.execute(text("select response_critiques, edit, annotator_config from judgements")).one()
    assert row[0] is not None and "too long" in row[0] and "short" in row[1] and row[2] is None
    db.close()


def test_upgrade_from_the_team_0005_head(tmp_path):
    """A database made at 0005 (label provenance, team, adjudications) gains the language-feedback columns."""
    path = str(tmp_path / "team.db")
    _upgrade_to(path, "0005").dispose()
    db = Database(path)
    assert {"annotator_config", "response_critiques", "edit"} <= _columns(db, "judgements")
    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        assert conn.execute(text("select version_num from alembic_version")).scalar() == "0006"
    db.close()


def test_serve_refuses_several_workers_on_sqlite(tmp_path):
    from typer.testing import CliRunner

    from rlhfkit.cli import app

    r = CliRunner().invoke(app, ["serve", "--db", str(tmp_path / "f.db"), "--workers", "2"])
    assert r.exit_code != 0 and "--workers 2 needs a PostgreSQL --db" in r.output
