"""alerts.logs_url: the link to a failing call's log lines in VictoriaLogs, beside its Jaeger link.

Revision ID: 0007_alert_logs_url
Revises: 0006_acknowledgement_escalation
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_alert_logs_url"
down_revision = "0006_acknowledgement_escalation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alerts") as alerts:
        alerts.add_column(sa.Column("logs_url", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alerts") as alerts:
        alerts.drop_column("logs_url")
