"""Judgements: language feedback beside the judgement (critiques of single responses, an edit).

Revision ID: 0006
Revises: 0005

``response_critiques`` is a JSON list of ``{"response": index, "text": ...}`` and ``edit`` a
JSON ``{"response": index, "text": ...}`` (``rlhfkit.schema.ResponseCritique`` /
``ResponseEdit``, original response indices); both null when the annotator wrote none.
Existing rows keep null: nothing to backfill.

This migration was first released as revision 0003 (Revises: 0002), beside the other 0003
(label provenance). A database made then is stamped "0003" but has these two columns and lacks
``annotator_config``; Alembic reads its stamp as label provenance's 0003 and runs 0004, 0005 and
then this one. So this one adds only the columns that are missing, including
``annotator_config``: every database reaches the same schema whichever 0003 it was made at.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

COLUMNS = ("annotator_config", "response_critiques", "edit")


def upgrade() -> None:
    present = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("judgements")}
    for name in COLUMNS:
        if name not in present:
            op.add_column("judgements", sa.Column(name, sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("judgements") as batch:
        batch.drop_column("edit")
        batch.drop_column("response_critiques")
