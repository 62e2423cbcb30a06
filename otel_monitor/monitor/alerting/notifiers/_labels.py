"""An alert as Alertmanager labels and annotations: shared by the alertmanager channel and the webhook's
``alertmanager`` format, so both name an alert the same way."""

from __future__ import annotations

from otel_monitor.monitor.alerting.model import Alert

__all__ = ["labels_and_annotations"]


def _description(alert: Alert, runbook_is_url: bool) -> str:
    where = f"{alert.error_code}, service {alert.service}" if alert.service else alert.error_code
    text = f"{alert.summary.rstrip('.')} ({where}). Action required: {alert.action_required.rstrip('.')}."
    if alert.runbook and not runbook_is_url:
        text += f" Runbook: {alert.runbook}"
    return text


def labels_and_annotations(alert: Alert) -> tuple[dict[str, str], dict[str, str]]:
    """An alert's Alertmanager labels and annotations (for ``/api/v2/alerts`` and the ``alertmanager`` webhook
    format alike); empty values are left out.

    Labels identify the alert (Alertmanager dedupes and groups on them): the rule's labels, then ``alertname``,
    ``severity`` (critical/warning/info for P0/P1/P2), ``priority``, ``error_code``, ``service``, ``fingerprint``.
    Annotations: ``summary``, ``description``, ``action_required``, ``runbook``, ``runbook_url`` (when the runbook
    is a link), ``trace_id``, ``jaeger_url`` and ``logs_url`` of a failing call, and ``inhibited`` (the alerts held
    back).
    """
    labels = {
        **alert.labels,
        "alertname": alert.rule,
        "severity": alert.priority.severity,
        "priority": alert.priority.value,
        "error_code": alert.error_code,
        "fingerprint": alert.fingerprint,
    }
    if alert.service:
        labels["service"] = alert.service
    runbook_is_url = alert.runbook.startswith(("https://", "http://"))
    annotations = {
        "summary": alert.summary,
        "description": _description(alert, runbook_is_url),
        "action_required": alert.action_required,
        "runbook": alert.runbook,
        "runbook_url": alert.runbook if runbook_is_url else None,
        "trace_id": alert.trace_id,
        "jaeger_url": alert.jaeger_url,
        "logs_url": alert.logs_url,
        "inhibited": ", ".join(alert.inhibited) or None,
    }
    return (
        {key: str(value) for key, value in labels.items() if value not in (None, "")},
        {key: str(value) for key, value in annotations.items() if value not in (None, "")},
    )
