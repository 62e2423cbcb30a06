"""The delivery ledger: alert_delivery_attempts, one row per finished attempt at an alert_outbox row.

Revision ID: 0003_delivery_attempts
Revises: 0002_alerting_tables
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_delivery_attempts"
down_revision = "0002_alerting_tables"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_delivery_attempts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("outbox_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("result", sa.String(length=8), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alert_delivery_attempts"),
        sa.UniqueConstraint("outbox_id", "attempt", name="uq_alert_delivery_attempts_outbox_id_attempt"),
    )


def downgrade() -> None:
    op.drop_table("alert_delivery_attempts")
