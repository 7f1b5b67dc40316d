"""Judgements: language feedback beside the judgement (critiques of single responses, an edit).

Revision ID: 0003
Revises: 0002

``response_critiques`` is a JSON list of ``{"response": index, "text": ...}`` and ``edit`` a
JSON ``{"response": index, "text": ...}`` (``rlhfkit.schema.ResponseCritique`` /
``ResponseEdit``, original response indices); both null when the annotator wrote none.
Existing rows keep null: nothing to backfill.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("judgements", sa.Column("response_critiques", sa.JSON(), nullable=True))
    op.add_column("judgements", sa.Column("edit", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("judgements") as batch:
        batch.drop_column("edit")
        batch.drop_column("response_critiques")
