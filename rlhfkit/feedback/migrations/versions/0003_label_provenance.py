"""Judgements: the configuration of the annotator that made a label (simulated, model judge).

Revision ID: 0003
Revises: 0002

``source`` (human / simulated / model_judge) exists since 0002 for imported judgements; the
submit API now sets it too, and ``annotator_config`` keeps what shaped a non-human label.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("judgements", sa.Column("annotator_config", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("judgements") as batch:
        batch.drop_column("annotator_config")
