"""Alembic environment: runs on the connection handed in by ``db.upgrade`` (or a URL)."""

from alembic import context
from sqlalchemy import create_engine

from rlhfkit.feedback.models import Base

config = context.config
target_metadata = Base.metadata


def run() -> None:
    conn = config.attributes.get("connection")
    if conn is None:  # e.g. `alembic -x url=... upgrade head` by hand
        url = context.get_x_argument(as_dictionary=True)["url"]
        with create_engine(url).begin() as conn:
            context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
            context.run_migrations()
        return
    context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
    context.run_migrations()


run()
