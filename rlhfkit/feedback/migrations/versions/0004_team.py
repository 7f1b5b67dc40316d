"""Team features: project membership, archive flag, worked examples, annotator roles.

Revision ID: 0004
Revises: 0003

Existing projects stay open to every annotator (``members_only`` false, not archived); existing
annotators keep the plain annotator role.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("projects", sa.Column("archived", sa.Boolean(), nullable=False, server_default="0"))
    op.add_column("projects", sa.Column("members_only", sa.Boolean(), nullable=False, server_default="0"))
    op.add_column("projects", sa.Column("examples", sa.JSON(), nullable=True))
    op.add_column("annotators", sa.Column("role", sa.String(16), nullable=False, server_default="annotator"))
    op.create_table(
        "project_members",
        sa.Column("project_id", sa.Integer(), sa.ForeignKey("projects.id"), primary_key=True),
        sa.Column("annotator_id", sa.Integer(), sa.ForeignKey("annotators.id"), primary_key=True),
    )


def downgrade() -> None:
    op.drop_table("project_members")
    with op.batch_alter_table("annotators") as batch:
        batch.drop_column("role")
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("examples")
        batch.drop_column("members_only")
        batch.drop_column("archived")
