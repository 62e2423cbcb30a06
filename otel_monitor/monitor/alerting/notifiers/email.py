"""Email over SMTP: alerts as plain text + HTML, the daily summary as HTML tables; 4xx/no answer retry, 5xx fail."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import make_msgid
from html import escape
from typing import Annotated, Literal

from pydantic import Field, SecretStr

from otel_monitor.monitor.alerting.delivery.retry import DeliveryResult
from otel_monitor.monitor.alerting.model import Priority
from otel_monitor.monitor.alerting.notification import Notification
from otel_monitor.monitor.alerting.notifiers.channel import ChannelSettings
from otel_monitor.redaction.scrubber import SecretScrubber, default_scrubber

__all__ = ["EmailChannel", "EmailNotifier", "email_message", "classify_smtp_error"]

# X-Priority: 1 highest, 3 normal.
_X_PRIORITY = {Priority.P0: "1 (Highest)", Priority.P1: "2 (High)", Priority.P2: "3 (Normal)"}


def classify_smtp_error(exc: BaseException) -> DeliveryResult:
    """No connection or a 4xx reply: retryable; a 5xx reply (550 mailbox refused, 535 auth failed): permanent."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return DeliveryResult(
            False, retryable=any(400 <= c < 500 for c in codes), detail=f"recipients refused: {sorted(set(codes))}"
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        return DeliveryResult(False, retryable=400 <= exc.smtp_code < 500, detail=f"SMTP {exc.smtp_code}")
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return DeliveryResult(False, retryable=False, detail="SMTP extension not supported (STARTTLS/AUTH)")
    return DeliveryResult(False, retryable=True, detail=f"SMTP transport error: {type(exc).__name__}")


def _rows(pairs: Sequence[tuple[str, object]]) -> str:
    return "".join(f"<tr><th align='left'>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in pairs)


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape('-' if c is None else str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table border='1' cellpadding='4' cellspacing='0'><tr>{head}</tr>{body}</table>"


def _alert_pairs(notification: Notification) -> list[tuple[str, object]]:
    alert = notification.alert
    return [
        ("Priority", alert.priority.value),
        ("Status", notification.transition),
        ("Error code", alert.error_code),
        *((k.replace("_", " ").capitalize(), v) for k, v in notification.details().items()),
    ]


def _summary_bodies(report: dict) -> tuple[str, str]:
    stats = report["statistics"]
    overview = [
        ("Total projects", stats["total_projects"]),
        ("Successful", stats["successful_projects"]),
        ("Failed", stats["failed_projects"]),
        ("Success rate %", stats["success_rate"]),
        ("Average duration (min)", stats["average_duration_minutes"]),
    ]
    performance = stats.get("system_performance") or {}
    spent = stats.get("spend") or {}
    if spent:
        overview.append((f"Spend ({spent['currency']})", spent["total_usd"]))
    projects_spend = spent.get("projects")
    dearest = (projects_spend or {}).get("most_expensive") or {}
    # (title, column headers, rows)
    sections: list[tuple[str, list[str], list[tuple[object, ...]]]] = [
        (
            "API calls",
            ["Service", "Total", "Success", "Failed", "Success rate %"],
            [(s, c["total"], c["success"], c["failed"], c["success_rate"]) for s, c in stats["api_calls"].items()],
        ),
        (
            "Quota usage",
            ["Service", "Used", "Total", "Percentage", "Reset"],
            [(s, q["used"], q["total"], q["percentage"], q.get("reset_date")) for s, q in stats["quota_usage"].items()],
        ),
        (
            "Spend per provider",
            ["Service", f"Spend ({spent.get('currency', '')})"],
            list((spent.get("providers") or {}).items()),
        ),
        (
            "Spend per project",
            ["Projects", "Total", "Average", "P90", "Most expensive", "Its cost", "Its trace"],
            [
                (
                    projects_spend["count"],
                    projects_spend["total_usd"],
                    projects_spend["average_usd"],
                    projects_spend["p90_usd"],
                    dearest.get("project_id"),
                    dearest.get("cost_usd"),
                    dearest.get("jaeger_url") or dearest.get("trace_id"),
                )
            ]
            if projects_spend
            else [],
        ),
        (
            "Most common errors",
            ["Error code", "Service", "Count"],
            [(e["error_code"], e["service"], e["count"]) for e in stats.get("most_common_errors", [])],
        ),
        (
            "API performance",
            ["Service", "P50 s", "P90 s", "P99 s", "Success rate %"],
            [
                (s, p.get("p50_seconds"), p.get("p90_seconds"), p.get("p99_seconds"), p.get("success_rate"))
                for s, p in (performance.get("apis") or {}).items()
            ],
        ),
        (
            "Hosts",
            ["Host", "CPU peak %", "Memory peak %", "Lowest free disk %"],
            [
                (h, p.get("cpu_peak_percent"), p.get("memory_peak_percent"), p.get("disk_free_min_percent"))
                for h, p in (performance.get("hosts") or {}).items()
            ],
        ),
    ]
    alert_headers = ["Rule", "Service", "Error code", "First fired", "Resolved", "Times fired", "Worst value"]
    for title, entries in (
        ("Warnings (P2)", report.get("warnings") or []),
        *((f"{p} alerts", (report.get("alerts") or {}).get(p) or []) for p in ("P0", "P1")),
    ):
        sections.append(
            (
                title,
                alert_headers,
                [
                    (
                        e["rule"],
                        e["service"],
                        e["error_code"],
                        e["first_fired"],
                        "still firing" if e["still_firing"] else e["resolved"],
                        e["times_fired"],
                        e["worst_value"],
                    )
                    for e in entries
                ],
            )
        )
    queue_peak = performance.get("celery_queue_peak")
    html = (
        f"<h2>Daily Summary Report {escape(report['date'])}</h2><h3>Projects</h3>"
        f"<table border='1' cellpadding='4' cellspacing='0'>{_rows(overview)}</table>"
        + "".join(f"<h3>{escape(title)}</h3>{_table(headers, rows)}" for title, headers, rows in sections)
        + f"<p>Celery queue peak: {escape(str('-' if queue_peak is None else queue_peak))}</p>"
    )
    text = "\n".join(
        [
            f"Daily Summary Report {report['date']}",
            *(f"{k}: {v}" for k, v in overview),
            *(
                line
                for title, headers, rows in sections
                for line in (
                    f"{title}:",
                    *(
                        "  " + ", ".join(f"{h}: {'-' if c is None else c}" for h, c in zip(headers, row, strict=False))
                        for row in rows
                    ),
                )
            ),
            f"Celery queue peak: {'-' if queue_peak is None else queue_peak}",
        ]
    )
    return text, html


def _alert_bodies(notification: Notification) -> tuple[str, str]:
    pairs = _alert_pairs(notification)
    text = "\n".join([notification.title, "", *(f"{k}: {v}" for k, v in pairs)])
    html = (
        f"<h2>{escape(notification.title)}</h2><table border='1' cellpadding='4' cellspacing='0'>{_rows(pairs)}</table>"
    )
    if notification.digest:
        rows = [
            (
                e.transition,
                e.alert.error_code,
                e.alert.service,
                e.alert.summary,
                e.alert.action_required,
                e.alert.trace_id,
                e.alert.jaeger_url,
                e.alert.logs_url,
            )
            for e in notification.digest
        ]
        html += "<h3>Alerts</h3>" + _table(
            ["Status", "Error code", "Service", "Summary", "Action required", "Trace", "Jaeger", "Logs"], rows
        )
        text += "\n\nAlerts:\n" + "\n".join(
            f"- [{r[0]}] {r[1]} service={r[2] or '-'}: {r[3]} | action: {r[4]}"
            + (f" | trace: {r[5]} {r[6] or ''}".rstrip() if r[5] else "")
            + (f" | logs: {r[7]}" if r[7] else "")
            for r in rows
        )
    return text, html


def email_message(notification: Notification, sender: str, recipients: Sequence[str]) -> EmailMessage:
    """The message: ``[P0] P0 Alert: ... (ERROR_CODE)`` subject, priority headers, text and HTML parts."""
    alert = notification.alert
    message = EmailMessage()
    message["Subject"] = f"[{alert.priority.value}] {notification.title} ({alert.error_code})"
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Message-ID"] = make_msgid(idstring=notification.id)
    message["X-Priority"] = _X_PRIORITY[alert.priority]
    message["X-Alert-Priority"] = alert.priority.value
    message["X-Alert-Error-Code"] = alert.error_code
    message["X-Notification-Id"] = notification.id
    text, html = _summary_bodies(notification.report) if notification.report else _alert_bodies(notification)
    message.set_content(text)
    message.add_alternative(f"<html><body>{html}</body></html>", subtype="html")
    return message


class EmailChannel(ChannelSettings):
    type: Literal["email"]
    host: str = Field(min_length=1)
    port: int = Field(25, ge=1, le=65535)
    sender: str = Field(min_length=3, pattern=r"@")
    recipients: tuple[Annotated[str, Field(pattern=r"@")], ...] = Field(min_length=1)
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool = False


class EmailNotifier:
    """Sends each notification as one email; smtplib runs in a thread. STARTTLS and login are optional."""

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        sender: str,
        recipients: Sequence[str],
        *,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout: float = 10.0,
        scrubber: SecretScrubber = default_scrubber,
    ) -> None:
        self.name = name
        self._host, self._port = host, port
        self._sender, self._recipients = sender, list(recipients)
        self._username, self._password = username, password
        self._starttls = starttls
        self._timeout = timeout
        self._scrubber = scrubber
        if password:
            scrubber.register(password)

    async def notify(self, notification: Notification) -> DeliveryResult:
        message = email_message(notification, self._sender, self._recipients)
        try:
            await asyncio.to_thread(self._send, message)
        except (smtplib.SMTPException, OSError) as exc:
            result = classify_smtp_error(exc)
            return DeliveryResult(False, result.retryable, self._scrubber.scrub_text(result.detail))
        return DeliveryResult(ok=True, detail="SMTP 250")

    def _send(self, message: EmailMessage) -> None:
        with smtplib.SMTP(self._host, self._port, timeout=self._timeout) as smtp:
            if self._starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self._username:
                smtp.login(self._username, self._password or "")
            smtp.send_message(message, self._sender, self._recipients)
