"""Silences: the silences table, and alerts.firing_held (a firing notification held by a silence, not sent yet).

Revision ID: 0005_silences
Revises: 0004_status_uptime
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_silences"
down_revision = "0004_status_uptime"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "silences",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("matchers", sa.Text(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("author", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_silences"),
    )
    op.create_index("ix_silences_ends_at", "silences", ["ends_at"])
    op.add_column("alerts", sa.Column("firing_held", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("firing_held")
    op.drop_index("ix_silences_ends_at", table_name="silences")
    op.drop_table("silences")
