"""Judgements: idempotency keys per annotator; imported judgements keep their source and origin.

Revision ID: 0002
Revises: 0001

``client_id`` is the id a client sends (before: the primary key itself, so a second annotator
reusing an id learnt that it existed). It is unique per annotator; ``id`` becomes a server id
(existing rows keep theirs, which is also their client_id). ``source`` is human / simulated /
model_judge; ``origin`` is the file:line of an imported judgement (null for ones made here).
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("judgements", sa.Column("client_id", sa.String(64), nullable=True))
    op.add_column("judgements", sa.Column("source", sa.String(16), nullable=False, server_default="human"))
    op.add_column("judgements", sa.Column("origin", sa.String(500), nullable=True))
    op.execute("UPDATE judgements SET client_id = id")
    with op.batch_alter_table("judgements") as batch:  # SQLite: rebuilds the table
        batch.alter_column("client_id", existing_type=sa.String(64), nullable=False)
    op.create_index("uq_judgements_annotator_client", "judgements", ["annotator_id", "client_id"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_judgements_annotator_client", table_name="judgements")
    with op.batch_alter_table("judgements") as batch:
        batch.drop_column("origin")
        batch.drop_column("source")
        batch.drop_column("client_id")
