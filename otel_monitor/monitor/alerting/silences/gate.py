"""The pipeline's silence gate: the notifications of alerts a silence or an open maintenance window holds are held
(not dropped), and released once nothing holds the alert and it still fires."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

from otel_monitor._utc_time import utc_now
from otel_monitor.logs.logger import StructuredLogger
from otel_monitor.monitor.alerting.evaluate.changes import Change, ChangeKind
from otel_monitor.monitor.alerting.model import Alert, AlertState
from otel_monitor.monitor.alerting.silences.model import Silence
from otel_monitor.monitor.alerting.silences.store import SilenceStore
from otel_monitor.monitor.alerting.silences.windows import MaintenanceWindow
from otel_monitor.monitor.alerting.state import AlertStore

__all__ = ["SilenceGate", "SILENCES_REREAD_SECONDS"]

# How old the silences kept in memory may get before the gate reads them again (the API's changes apply at once).
SILENCES_REREAD_SECONDS = 5.0
# The gate's lines keep the pipeline's logger name (operators filter on it).
_log = StructuredLogger("otel_monitor.alerting.service")


class SilenceGate:
    """Which silences and maintenance windows hold an alert now (``holding``), and the pipeline stage (``run``)
    acting on it, at every evaluation pass:

    - a firing transition of an alert held is not announced: it is kept (``UPDATED``) and recorded as held on the
      alert's episode, which survives a restart (``restore``);
    - the resolution of an alert whose firing was held sends nothing (``ENDED``, logged); the resolution of an
      alert whose firing went out goes out, silenced or not;
    - a held alert that still fires once nothing holds it is announced then, once (its firing notification keeps
      the id it would have had).

    Silences are read from ``store`` at most every ``reread_seconds`` (``invalidate`` forces the next pass to);
    ``current_alerts`` gives the evaluator's pending and firing alerts.
    """

    def __init__(
        self,
        store: SilenceStore,
        alert_store: AlertStore,
        *,
        current_alerts: Callable[[], Sequence[Alert]],
        windows: Sequence[MaintenanceWindow] = (),
        clock: Callable[[], dt.datetime] = utc_now,
        reread_seconds: float = SILENCES_REREAD_SECONDS,
    ) -> None:
        self.store = store
        self.windows = tuple(windows)
        self._alert_store = alert_store
        self._current_alerts = current_alerts
        self._clock = clock
        self._reread = dt.timedelta(seconds=reread_seconds)
        self._silences: list[Silence] = []
        self._read_at: dt.datetime | None = None
        self._open_windows: set[str] = set()
        self._held: set[str] = set()  # fingerprints whose firing notification is held

    # -- what holds an alert -------------------------------------------------------------------------------------
    def holding(self, alert: Alert, now: dt.datetime | None = None) -> list[str]:
        """The ids of the silences and maintenance windows that hold ``alert`` at ``now`` (default: the clock)."""
        now = now or self._clock()
        held_by = [silence.id for silence in self._silences if silence.holds(alert, now)]
        return held_by + [window.id for window in self.windows if window.holds(alert, now)]

    def open_windows(self, now: dt.datetime | None = None) -> list[MaintenanceWindow]:
        now = now or self._clock()
        return [window for window in self.windows if window.is_open(now)]

    @property
    def held(self) -> frozenset[str]:
        """The fingerprints of the alerts whose firing notification is held now."""
        return frozenset(self._held)

    def invalidate(self) -> None:
        """Makes the next pass read the silences again (one was added or expired)."""
        self._read_at = None

    async def refresh(self) -> None:
        """Reads the silences again when due, and logs each maintenance window that opened or closed."""
        now = self._clock()
        if self._read_at is None or now - self._read_at >= self._reread:
            try:
                self._silences = await self.store.executor.run(self.store.unexpired)
                self._read_at = now
            except Exception as exc:  # the silences kept in memory go on holding what they held
                _log.error("Reading silences failed; keeping the last read", error=repr(exc))
        open_now = {window.name for window in self.open_windows(now)}
        for name in sorted(open_now - self._open_windows):
            _log.info("Maintenance window started", window=name)
        for name in sorted(self._open_windows - open_now):
            _log.info("Maintenance window ended", window=name)
        self._open_windows = open_now

    async def restore(self) -> None:
        """Takes back the held firing notifications recorded in the store."""
        try:
            self._held = set(await self._alert_store.executor.run(self._alert_store.load_held))
        except Exception as exc:
            _log.error("Restoring held notifications failed; holding none", error=repr(exc))

    # -- the pipeline stage ---------------------------------------------------------------------------------------
    async def run(self, changes: list[Change]) -> list[Change]:
        """The pass's changes with the held ones turned into kept ones, and the released firings added."""
        await self.refresh()
        now = self._clock()
        passing: list[Change] = []
        for change in changes:
            alert = change.alert
            if change.kind is ChangeKind.FIRED and (held_by := self.holding(alert, now)):
                self._held.add(alert.fingerprint)
                await self._record_hold(alert, held=True)
                _log.info("Alert notification held", rule=alert.rule, error_code=alert.error_code, silenced_by=held_by)
                passing.append(Change(alert, ChangeKind.UPDATED))
            elif change.kind is ChangeKind.RESOLVED and alert.fingerprint in self._held:
                self._held.discard(alert.fingerprint)
                _log.info(
                    "Held alert resolved before its silence ended; nothing sent",
                    rule=alert.rule,
                    error_code=alert.error_code,
                )
                passing.append(Change(alert, ChangeKind.ENDED))
            else:
                passing.append(change)
        return passing + await self._released(now)

    async def _released(self, now: dt.datetime) -> list[Change]:
        """Firing changes of the held alerts that nothing holds any more."""
        if not self._held:
            return []
        current = {alert.fingerprint: alert for alert in self._current_alerts()}
        released: list[Change] = []
        for fingerprint in sorted(self._held):
            alert = current.get(fingerprint)
            if alert is None:  # gone without a resolution (its rule removed): nothing to send
                self._held.discard(fingerprint)
            elif alert.state is AlertState.FIRING and not self.holding(alert, now):
                self._held.discard(fingerprint)
                await self._record_hold(alert, held=False)
                _log.info("Held alert notification released", rule=alert.rule, error_code=alert.error_code)
                released.append(Change(alert, ChangeKind.FIRED))
        return released

    async def _record_hold(self, alert: Alert, *, held: bool) -> None:
        try:
            await self._alert_store.executor.run(self._alert_store.upsert, alert, firing_held=held)
        except Exception as exc:  # kept in memory all the same; only a restart would forget it
            _log.error("Recording a held notification failed", rule=alert.rule, error=repr(exc))
