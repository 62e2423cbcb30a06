"""The status page's uptime history: status_uptime_days, one row per component per UTC day.

Revision ID: 0004_status_uptime
Revises: 0003_delivery_attempts
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_status_uptime"
down_revision = "0003_delivery_attempts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "status_uptime_days",
        sa.Column("component", sa.String(length=128), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("checks_up", sa.Integer(), nullable=False),
        sa.Column("checks_total", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("component", "day", name="pk_status_uptime_days"),
    )


def downgrade() -> None:
    op.drop_table("status_uptime_days")
