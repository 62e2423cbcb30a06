"""Acknowledgement, repeat and escalation, incident timelines: alert_acks, alert_escalations, incident_events;
incidents.acknowledged_at, incidents.status wide enough for "acknowledged", and "closed" incidents now "resolved".

Revision ID: 0006_acknowledgement_escalation
Revises: 0005_silences
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_acknowledgement_escalation"
down_revision = "0005_silences"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("incidents") as incidents:
        incidents.alter_column("status", existing_type=sa.String(length=8), type_=sa.String(length=16))
        incidents.add_column(sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE incidents SET status = 'resolved' WHERE status = 'closed'")
    op.create_table(
        "incident_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("author", sa.String(length=255), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_incident_events"),
    )
    op.create_index("ix_incident_events_incident_id_at", "incident_events", ["incident_id", "at"])
    op.create_table(
        "alert_acks",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("fingerprint", sa.String(length=255), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("by", sa.String(length=255), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alert_acks"),
    )
    op.create_index("ix_alert_acks_fingerprint_starts_at", "alert_acks", ["fingerprint", "starts_at"])
    op.create_table(
        "alert_escalations",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("fingerprint", sa.String(length=255), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("repeats", sa.Integer(), nullable=False),
        sa.Column("last_notified_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("steps_since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("steps_reached", sa.Integer(), nullable=False),
        sa.Column("channels_reached", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alert_escalations"),
        sa.UniqueConstraint("fingerprint", "starts_at", name="uq_alert_escalations_fingerprint_starts_at"),
    )


def downgrade() -> None:
    op.drop_table("alert_escalations")
    op.drop_index("ix_alert_acks_fingerprint_starts_at", table_name="alert_acks")
    op.drop_table("alert_acks")
    op.drop_index("ix_incident_events_incident_id_at", table_name="incident_events")
    op.drop_table("incident_events")
    op.execute("UPDATE incidents SET status = 'closed' WHERE status = 'resolved'")
    op.execute("UPDATE incidents SET status = 'open' WHERE status = 'acknowledged'")
    with op.batch_alter_table("incidents") as incidents:
        incidents.drop_column("acknowledged_at")
        incidents.alter_column("status", existing_type=sa.String(length=16), type_=sa.String(length=8))
