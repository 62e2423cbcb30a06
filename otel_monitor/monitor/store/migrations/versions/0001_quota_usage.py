"""The quota_usage table: one row per quota check.

Revision ID: 0001_quota_usage
Revises:
Create Date: 2026-01-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_quota_usage"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "quota_usage",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("service", sa.String(length=32), nullable=False),
        sa.Column("used", sa.Float(), nullable=False),
        sa.Column("total", sa.Float(), nullable=False),
        sa.Column("percentage", sa.Float(), nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_quota_usage"),
    )
    op.create_index("ix_quota_usage_service_timestamp", "quota_usage", ["service", "timestamp"])


def downgrade() -> None:
    op.drop_index("ix_quota_usage_service_timestamp", table_name="quota_usage")
    op.drop_table("quota_usage")
