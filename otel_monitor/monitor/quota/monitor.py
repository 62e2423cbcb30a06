"""QuotaMonitor: each check logs "Quota critical" (P1) or "Quota warning" (P2) and persists a row."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from otel_monitor._utc_time import iso_utc, utc_now
from otel_monitor.instrument.error_codes import ProviderFailure, SystemErrorCode, provider_error_code
from otel_monitor.instrument.providers import SERVICE_KEYS
from otel_monitor.logs.logger import StructuredLogger
from otel_monitor.monitor.quota.config import QuotaConfig, QuotaThresholds
from otel_monitor.monitor.quota.reset_schedule import ResetRule, next_reset
from otel_monitor.monitor.quota.status import CRITICAL, EXCEEDED, WARNING, quota_status, usage_ratio
from otel_monitor.monitor.quota.store import QuotaStore, QuotaStoreError

__all__ = ["QuotaCheck", "QuotaMonitor", "service_key"]


class _Unset(enum.Enum):
    """No reset date given (None means: the quota has none)."""

    UNSET = enum.auto()


_UNSET = _Unset.UNSET
logger = StructuredLogger(__name__)


def service_key(name: str) -> str:
    """The service key of ``name``, accepting the JSON spelling: ``d_id`` -> ``d-id``."""
    key = name.replace("_", "-")
    if key not in SERVICE_KEYS:
        raise ValueError(f"unknown service {name!r}; known: {list(SERVICE_KEYS)}")
    return key


@dataclass(frozen=True)
class QuotaCheck:
    """The outcome of one check; ``percentage`` in percent, ``stored`` whether the row reached the store."""

    service: str
    used: float
    total: float
    percentage: float
    status: str
    reset_date: dt.datetime | None
    checked_at: dt.datetime
    stored: bool


class QuotaMonitor:
    """Checks a quota against the thresholds: ERROR "Quota critical" (P1) at >= 90 %, WARNING "Quota warning" (P2)
    at >= 80 %, and records every check in the store (an in-memory SQLite one unless injected)."""

    def __init__(
        self,
        store: QuotaStore | None = None,
        *,
        thresholds: QuotaThresholds | None = None,
        reset_rules: Mapping[str, ResetRule] | None = None,
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self.store = store if store is not None else QuotaStore()
        self._limits = thresholds or QuotaThresholds()
        self.thresholds = {"warning": self._limits.warning, "critical": self._limits.critical}
        self._rules = dict(reset_rules) if reset_rules is not None else QuotaConfig().reset_rules()
        self._clock = clock

    async def check_quota(
        self,
        service: str,
        used: float,
        total: float,
        *,
        reset_date: dt.datetime | None | Literal[_Unset.UNSET] = _UNSET,
        refused_at: dt.datetime | None = None,
    ) -> QuotaCheck:
        """Logs the check when over a threshold and persists it; a store failure is logged, never raised.
        ``refused_at``: the provider's refusal (for lack of quota) that this check reports, logged with it."""
        key = service_key(service)
        ratio = usage_ratio(used, total)
        now = self._clock()
        if reset_date is _UNSET:
            rule = self._rules.get(key)
            reset_date = next_reset(rule, now) if rule is not None else None
        status = quota_status(ratio, self._limits)
        percentage = round(ratio * 100, 6)
        fields = {
            "service": key,
            "quota_used": used,
            "quota_total": total,
            "quota_remaining": max(total - used, 0),
            "quota_percentage": round(percentage, 2),
            "quota_status": status,
            "reset_date": iso_utc(reset_date),
        }
        if refused_at is not None:
            fields["quota_refused_at"] = iso_utc(refused_at)
        if status in (CRITICAL, EXCEEDED):
            logger.error(
                "Quota critical",
                extra={
                    "alert_priority": "P1",
                    "error_code": provider_error_code(key, ProviderFailure.QUOTA_EXCEEDED),
                    **fields,
                },
            )
        elif status == WARNING:
            logger.warning("Quota warning", extra={"alert_priority": "P2", **fields})
        stored = await self._persist(key, used, total, percentage, now)
        return QuotaCheck(key, used, total, percentage, status, reset_date, now, stored)

    async def _persist(self, service: str, used: float, total: float, percentage: float, now: dt.datetime) -> bool:
        try:
            await self.store.executor.run(self.store.add, service, used, total, percentage, now)
        except QuotaStoreError as error:
            logger.error(
                "Quota usage not stored",
                service=service,
                store=error.store,
                reason=error.reason,
                error_code=SystemErrorCode.DATABASE_CONNECTION_FAILED.value,
            )
            return False
        return True
