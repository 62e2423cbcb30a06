"""The alerting tables (alerts, incidents, alert_outbox, alert_digest_entries, alert_digest_sent_hours).

Releases before this revision created them outside Alembic, on first use, and added the nullable columns that came
later (alerts.fired_at, min_value, max_value) to a table made before them. So each table is created only where it
is missing, and a table that exists gets the nullable columns it lacks; its rows are kept.

Revision ID: 0002_alerting_tables
Revises: 0001_quota_usage
Create Date: 2026-05-01
"""

from collections.abc import Callable

import sqlalchemy as sa
from alembic import context, op

revision = "0002_alerting_tables"
down_revision = "0001_quota_usage"
branch_labels = None
depends_on = None


def _alerts() -> list:
    return [
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("fingerprint", sa.String(length=255), nullable=False),
        sa.Column("rule", sa.String(length=255), nullable=False),
        sa.Column("priority", sa.String(length=4), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("service", sa.String(length=255), nullable=True),
        sa.Column("labels", sa.Text(), nullable=False),
        sa.Column("error_code", sa.String(length=128), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("action_required", sa.Text(), nullable=False),
        sa.Column("runbook", sa.Text(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("inhibited", sa.Text(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("trace_id", sa.String(length=64), nullable=True),
        sa.Column("jaeger_url", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("min_value", sa.Float(), nullable=True),
        sa.Column("max_value", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
        sa.UniqueConstraint("fingerprint", "starts_at", name="uq_alerts_fingerprint_starts_at"),
    ]


def _incidents() -> list:
    return [
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("fingerprint", sa.String(length=255), nullable=False),
        sa.Column("rule", sa.String(length=255), nullable=False),
        sa.Column("error_code", sa.String(length=128), nullable=False),
        sa.Column("service", sa.String(length=255), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_incidents"),
    ]


def _alert_outbox() -> list:
    return [
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("notification_id", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("fingerprint", sa.String(length=255), nullable=False),
        sa.Column("priority", sa.String(length=4), nullable=False),
        sa.Column("transition", sa.String(length=16), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alert_outbox"),
        sa.UniqueConstraint("notification_id", "channel", name="uq_alert_outbox_notification_id_channel"),
    ]


def _alert_digest_entries() -> list:
    return [
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("notification_id", sa.String(length=64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alert_digest_entries"),
        sa.UniqueConstraint(
            "period_start", "notification_id", name="uq_alert_digest_entries_period_start_notification_id"
        ),
    ]


def _alert_digest_sent_hours() -> list:
    return [
        sa.Column("period_start", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("period_start", name="pk_alert_digest_sent_hours"),
    ]


# Each table: its columns and constraints (new objects on every call: a column belongs to one table), its indexes.
_TABLES: dict[str, tuple[Callable[[], list], dict[str, list[str]]]] = {
    "alerts": (_alerts, {"ix_alerts_state_updated_at": ["state", "updated_at"]}),
    "incidents": (_incidents, {"ix_incidents_fingerprint_status": ["fingerprint", "status"]}),
    "alert_outbox": (
        _alert_outbox,
        {"ix_alert_outbox_channel_status_next_attempt_at": ["channel", "status", "next_attempt_at"]},
    ),
    "alert_digest_entries": (_alert_digest_entries, {}),
    "alert_digest_sent_hours": (_alert_digest_sent_hours, {}),
}


def upgrade() -> None:
    # Offline (``alembic upgrade --sql``) there is no database to look at: the script is for an empty one.
    present: dict[str, set[str]] = {}
    if not context.is_offline_mode():
        inspector = sa.inspect(op.get_bind())
        present = {
            name: {column["name"] for column in inspector.get_columns(name)}
            for name in inspector.get_table_names()
            if name in _TABLES
        }
    for name, (definition, indexes) in _TABLES.items():
        if name not in present:
            op.create_table(name, *definition())
            for index, columns in indexes.items():
                op.create_index(index, name, columns)
            continue
        for column in definition():
            if not isinstance(column, sa.Column) or column.name in present[name]:
                continue
            if not column.nullable:
                raise RuntimeError(
                    f"table {name} lacks the required column {column.name}: not a table this "
                    "monitor made, or damaged; it cannot be migrated"
                )
            op.add_column(name, column)


def downgrade() -> None:
    for name, (_, indexes) in reversed(_TABLES.items()):
        for index in indexes:
            op.drop_index(index, table_name=name)
        op.drop_table(name)
