"""Inhibition: alerts caused by a firing upstream alert (database, Redis down) are held back and named by it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from otel_monitor.monitor.alerting.model import Alert, AlertState, Rule

__all__ = ["inhibit", "inhibited_name"]


def inhibited_name(alert: Alert) -> str:
    """How an inhibitor names an alert it holds back: ``rule`` or ``rule (service)``."""
    return f"{alert.rule} ({alert.service})" if alert.service else alert.rule


def _holds(inhibitor: Alert, alert: Alert) -> bool:
    """An inhibitor of one provider holds back that provider's alerts only; one of no provider (the database,
    Redis) holds back every alert of the rules it inhibits (Alertmanager's ``equal: [service]``)."""
    return inhibitor.service is None or alert.service is None or inhibitor.service == alert.service


def inhibit(alerts: Sequence[Alert], rules: Mapping[str, Rule]) -> tuple[list[Alert], list[Alert]]:
    """Splits firing ``alerts`` into (kept, inhibited).

    An alert is inhibited when its rule's ``inhibited_by`` names a rule with a firing alert among ``alerts`` that
    holds it (the same ``service``, or no service on either side: Gemini's failure streak holds back Gemini's
    lesser streak alert, not D-ID's). Each kept alert's ``inhibited`` is set to the sorted names of the alerts it
    holds back (empty when none), so its notification can name them. Order of ``alerts`` is preserved. Alerts of
    unknown rules are kept.
    """
    firing = [a for a in alerts if a.state is AlertState.FIRING]
    kept: list[Alert] = []
    inhibited: list[Alert] = []
    held_by: dict[str, set[str]] = {}
    for alert in alerts:
        rule = rules.get(alert.rule)
        names = rule.inhibited_by if rule else ()
        inhibitors = [other for other in firing if other.rule in names and _holds(other, alert)]
        if inhibitors:
            inhibited.append(alert)
            for other in inhibitors:
                held_by.setdefault(other.fingerprint, set()).add(inhibited_name(alert))
        else:
            kept.append(alert)
    kept = [
        replace(a, inhibited=tuple(sorted(held_by.get(a.fingerprint, ())))) if a.state is AlertState.FIRING else a
        for a in kept
    ]
    return kept, inhibited
