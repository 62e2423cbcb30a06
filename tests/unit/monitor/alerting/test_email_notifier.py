"""The email receiver on a real local SMTP server (aiosmtpd): content, the daily summary as HTML, failure classes."""

from __future__ import annotations

import datetime as dt
from email.message import EmailMessage

import pytest
from pydantic import ValidationError

from otel_monitor.monitor.alerting.delivery.daily_summary import summary_notification
from otel_monitor.monitor.alerting.delivery.digest import digest_notification
from otel_monitor.monitor.alerting.model import Alert, AlertState, Priority
from otel_monitor.monitor.alerting.notification import Notification
from otel_monitor.monitor.alerting.notifiers import EmailNotifier, build_notifiers
from otel_monitor.monitor.alerting.notifiers.email import email_message
from otel_monitor.monitor.alerting.routing import DeliveryConfig
from otel_monitor.redaction.scrubber import SecretScrubber
from tools.devstack import free_port

SUMMARY = {
    "message": "Daily Summary Report",
    "report_type": "daily_summary",
    "date": "2026-03-01",
    "statistics": {
        "total_projects": 50,
        "successful_projects": 47,
        "failed_projects": 3,
        "success_rate": 94,
        "average_duration_minutes": 8.5,
        "api_calls": {"gemini": {"total": 50, "success": 49, "failed": 1, "success_rate": 98}},
        "quota_usage": {"gemini": {"used": 49, "total": 1000, "percentage": 4.9, "reset_date": "2026-03-02T00:00:00Z"}},
        "most_common_errors": [{"error_code": "GEMINI_TIMEOUT", "service": "gemini", "count": 1}],
        "system_performance": {
            "apis": {"gemini": {"success_rate": 98, "p50_seconds": 1.25, "p90_seconds": 4.5, "p99_seconds": 9.75}},
            "hosts": {"worker-1": {"cpu_peak_percent": 83.5, "memory_peak_percent": 61, "disk_free_min_percent": 42}},
            "celery_queue_peak": 57,
        },
        "spend": {
            "currency": "USD",
            "total_usd": 41.375,
            "providers": {"d-id": 20, "gemini": 21.375},
            "projects": {
                "count": 3,
                "total_usd": 40.5,
                "average_usd": 13.5,
                "p90_usd": 17.25,
                "most_expensive": {
                    "project_id": "proj-dearest",
                    "cost_usd": 18.5,
                    "outcome": "success",
                    "trace_id": "ef" * 16,
                    "jaeger_url": f"http://jaeger:16686/trace/{'ef' * 16}",
                    "completed_at": "2026-03-01T15:00:00Z",
                },
            },
        },
    },
    "alerts": {"P0": [], "P1": []},
    "warnings": [
        {
            "rule": "GeminiLatencyP50High",
            "service": "gemini",
            "error_code": "API_LATENCY_HIGH",
            "summary": "Gemini P50 latency above 5 s",
            "labels": {"service": "gemini"},
            "first_fired": "2026-03-01T10:15:00Z",
            "resolved": None,
            "still_firing": True,
            "times_fired": 2,
            "worst_value": 6.25,
        }
    ],
}


def alert(priority: Priority = Priority.P0, code: str = "GEMINI_INVALID_API_KEY") -> Alert:
    return Alert(
        fingerprint="fp1",
        rule="gemini_invalid_key",
        priority=priority,
        state=AlertState.FIRING,
        error_code=code,
        summary="API Key Invalid",
        action_required="Check GEMINI_API_KEY in environment variables",
        runbook="docs/runbook.md",
        labels={"service": "gemini"},
        starts_at=dt.datetime(2026, 3, 1, tzinfo=dt.UTC),
        trace_id="cd" * 16,
        jaeger_url="http://jaeger/trace/" + "cd" * 16,
        logs_url="http://logs/select/vmui/#/?query=trace_id%3A%22" + "cd" * 16 + "%22",
    )


def bodies(message: EmailMessage) -> tuple[str, str]:
    return (message.get_body(("plain",)).get_content(), message.get_body(("html",)).get_content())


NOTIFICATIONS = [
    pytest.param(
        Notification.of(alert()),
        "[P0] P0 Alert: API Key Invalid (GEMINI_INVALID_API_KEY)",
        "P0",
        [
            "GEMINI_INVALID_API_KEY",
            "Check GEMINI_API_KEY",
            "cd" * 16,
            "http://jaeger/trace/",
            "http://logs/select/vmui/",
        ],
        id="p0",
    ),
    pytest.param(
        digest_notification(
            dt.datetime(2026, 3, 1, 10, tzinfo=dt.UTC),
            [
                Notification.of(alert(Priority.P1, "D_ID_QUOTA_LOW")),
                Notification.of(alert(Priority.P1, "GEMINI_ERROR_RATE_HIGH")),
            ],
        ),
        None,
        "P1",
        ["D_ID_QUOTA_LOW", "GEMINI_ERROR_RATE_HIGH", "cd" * 16, "<th>Logs</th>", "http://logs/select/vmui/"],
        id="p1-digest",
    ),
    pytest.param(
        summary_notification(SUMMARY),
        None,
        "P2",
        [
            "2026-03-01",
            "<td>47</td>",
            "<td>98</td>",
            "<td>4.9</td>",
            "<td>1000</td>",
            "GEMINI_TIMEOUT",
            "<td>9.75</td>",
            "<td>worker-1</td>",
            "<td>83.5</td>",
            "Celery queue peak: 57",
            "<td>GeminiLatencyP50High</td>",
            "<td>still firing</td>",
            "<td>6.25</td>",
            "<th align='left'>Spend (USD)</th><td>41.375</td>",
            "<h3>Spend per provider</h3>",
            "<td>gemini</td><td>21.375</td>",
            "<h3>Spend per project</h3>",
            "<td>3</td><td>40.5</td><td>13.5</td><td>17.25</td><td>proj-dearest</td><td>18.5</td>",
            f"<td>http://jaeger:16686/trace/{'ef' * 16}</td>",
        ],
        id="p2-summary",
    ),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("notification", "subject", "priority", "html_has"), NOTIFICATIONS)
async def test_message_arrives(smtp_inbox, notification, subject, priority, html_has):
    """The message reaches the SMTP server with subject, priority headers, text and HTML parts holding the facts."""
    handler, port = smtp_inbox, smtp_inbox.port
    notifier = EmailNotifier("mail", "127.0.0.1", port, "monitor@example.org", ["ops@example.org"])
    result = await notifier.notify(notification)
    assert result.ok, result
    message = handler.messages[-1]
    if subject:
        assert message["Subject"] == subject
    assert message["X-Alert-Priority"] == priority
    assert message["X-Alert-Error-Code"] == notification.alert.error_code
    assert message["X-Notification-Id"] == notification.id
    text, html = bodies(message)
    for fact in html_has:
        assert fact in html
    assert notification.alert.error_code in text or "Daily Summary Report" in text


def test_summary_text_part_names_the_spend():
    """The plain-text part of the summary carries the spend per provider and per project, the dearest's trace."""
    text, _ = bodies(email_message(summary_notification(SUMMARY), "m@example.org", ["o@example.org"]))
    for fact in (
        "Spend (USD): 41.375",
        "Service: d-id, Spend (USD): 20",
        "Projects: 3, Total: 40.5, Average: 13.5, P90: 17.25, Most expensive: proj-dearest, Its cost: 18.5",
        f"Its trace: http://jaeger:16686/trace/{'ef' * 16}",
    ):
        assert fact in text


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("reply", "retryable"), [("550 mailbox unavailable", False), ("554 rejected", False), ("451 try again later", True)]
)
async def test_smtp_reply_classes(smtp_inbox, reply, retryable):
    """A 5xx reply is a permanent failure, a 4xx reply is retried."""
    handler, port = smtp_inbox, smtp_inbox.port
    handler.reply = reply
    result = await EmailNotifier("mail", "127.0.0.1", port, "m@example.org", ["o@example.org"]).notify(
        Notification.of(alert())
    )
    assert (result.ok, result.retryable) == (False, retryable)
    assert reply[:3] in result.detail


@pytest.mark.asyncio
async def test_refused_connection_is_retryable():
    """No SMTP server listening: retryable, and the password never shows in the detail."""
    scrubber = SecretScrubber()
    notifier = EmailNotifier(
        "mail",
        "127.0.0.1",
        free_port(),
        "m@example.org",
        ["o@example.org"],
        username="u",
        password="smtp-secret-42",
        scrubber=scrubber,
        timeout=2,
    )
    result = await notifier.notify(Notification.of(alert()))
    assert (result.ok, result.retryable) == (False, True)
    assert "smtp-secret-42" not in result.detail


def test_email_channel_config_builds_notifier():
    """An ``email`` channel builds an EmailNotifier and registers its password with the scrubber."""
    scrubber = SecretScrubber()
    config = DeliveryConfig.model_validate(
        {
            "channels": {
                "mail": {
                    "type": "email",
                    "host": "smtp.example.org",
                    "port": 587,
                    "sender": "m@example.org",
                    "recipients": ["ops@example.org"],
                    "username": "u",
                    "password": "pw-secret-77",
                    "starttls": True,
                }
            },
            "routing": {"P2": ["mail"]},
        }
    )
    (notifier,) = build_notifiers(config, scrubber=scrubber).values()
    assert isinstance(notifier, EmailNotifier)
    assert "pw-secret-77" not in scrubber.scrub_text("x pw-secret-77 y")


@pytest.mark.parametrize(
    "channel",
    [
        pytest.param(
            {"host": "h", "sender": "m@example.org", "recipients": ["o@example.org"], "tls": True}, id="unknown-key"
        ),
        pytest.param({"host": "h", "sender": "m@example.org", "recipients": []}, id="no-recipients"),
        pytest.param({"host": "h", "sender": "nobody", "recipients": ["o@example.org"]}, id="bad-sender"),
        pytest.param({"sender": "m@example.org", "recipients": ["o@example.org"]}, id="no-host"),
    ],
)
def test_invalid_email_channel(channel):
    """Each invalid email channel is refused at load time."""
    with pytest.raises(ValidationError):
        DeliveryConfig.model_validate({"channels": {"mail": {"type": "email", **channel}}})
