"""Business metrics: projects started, finished, generation time, cost, active users (docs/requirements.md)."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from opentelemetry import metrics, trace
from opentelemetry.metrics import MeterProvider

from otel_monitor.instrument.costs import ProjectCosts, project_scope
from otel_monitor.instrument.metrics import METER_NAME, BusinessInstruments, ResultOutcome
from otel_monitor.instrument.redis_writer import RedisWriter

if TYPE_CHECKING:
    from redis import Redis
    from redis.client import Pipeline

__all__ = ["BusinessMetrics", "ActiveUsers"]

_log = logging.getLogger("otel_monitor.business")


class ActiveUsers:
    """Distinct users per UTC day in a Redis HyperLogLog: every backend process records, the monitor counts.

    Without Redis nothing is recorded: no process could count the users of the others.
    """

    def __init__(
        self,
        redis_client: Redis | None = None,
        *,
        prefix: str = "otel_monitor:active_users",
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._redis = redis_client
        self._writer = RedisWriter(redis_client) if redis_client is not None else None
        self._prefix = prefix
        self._clock = clock

    def _key(self, day: dt.date) -> str:
        return f"{self._prefix}:{day.isoformat()}"

    def record(self, user_id: str) -> None:
        if self._writer is None:
            return
        key = self._key(self._clock().date())

        def add(pipe: Pipeline) -> None:
            pipe.pfadd(key, user_id)
            pipe.expire(key, 40 * 86400)

        self._writer.submit(add)  # never waits on Redis

    def flush(self, timeout: float = 5.0) -> None:
        """Waits up to ``timeout`` seconds for this process's recorded users to reach Redis."""
        if self._writer is not None:
            self._writer.flush(timeout)

    def count(self, day: dt.date | None = None) -> int:
        """Distinct users of ``day`` (today, UTC), over every process; raises if Redis does not answer (an unknown
        count is not 0) or none is configured."""
        if self._redis is None:
            raise RuntimeError("active users are counted in Redis; no Redis client given")
        return int(self._redis.pfcount(self._key(day or self._clock().date())))


class BusinessMetrics:
    """Records the life of video projects; inject the meter provider (the global one by default)."""

    def __init__(
        self,
        meter_provider: MeterProvider | None = None,
        active_users: ActiveUsers | None = None,
        clock: Callable[[], float] = time.monotonic,
        project_costs: ProjectCosts | None = None,
    ) -> None:
        meter = metrics.get_meter(METER_NAME, meter_provider=meter_provider)
        self._instruments = BusinessInstruments.create(meter)
        self.active_users = active_users or ActiveUsers()
        self._clock = clock
        # where the calls' recorder adds each project's cost (the same ProjectCosts): read when a project finishes
        self.project_costs = project_costs if project_costs is not None else ProjectCosts()

    def start_at_zero(self) -> int:
        """Exports the project counters at 0 from now on (see ``BusinessInstruments.start_at_zero``)."""
        return self._instruments.start_at_zero()

    def project_started(self) -> None:
        self._instruments.projects_started.add(1)

    def project_finished(self, succeeded: bool, duration_seconds: float, cost_usd: float | None = None) -> None:
        """Counts a finished project with its duration and, when known, its cost."""
        outcome = {"outcome": ResultOutcome.SUCCESS if succeeded else ResultOutcome.FAILURE}
        self._instruments.projects_completed.add(1, outcome)
        self._instruments.project_duration.record(max(duration_seconds, 0.0), outcome)
        if cost_usd is not None:
            self._instruments.project_cost.record(max(cost_usd, 0.0), outcome)

    def project_cost(self, project_id: str | None) -> float | None:
        """The cost of the project's calls so far, over every process, forgotten once read; None when unknown."""
        if project_id is None:
            return None
        try:
            return self.project_costs.take(project_id)
        except Exception:  # observability never raises into the host
            _log.debug("could not read the project's cost", exc_info=True)
            return None

    def _keep_completed(self, project_id: str | None, cost: float, outcome: str) -> None:
        """Keeps the project's cost and trace for the daily summary; never raises into the host."""
        if project_id is None:
            return
        context = trace.get_current_span().get_span_context()
        trace_id = trace.format_trace_id(context.trace_id) if context.is_valid else None
        try:
            self.project_costs.completed(project_id, cost, outcome, trace_id)
        except Exception:
            _log.debug("could not keep the completed project", exc_info=True)

    @contextmanager
    def track_project(self, project_id: str | None = None) -> Iterator[None]:
        """Counts a project started, then succeeded (no exception) or failed, with its duration and its cost: the
        calls made within it (and in the project's other tasks, each within ``project_scope(project_id)``)."""
        started = self._clock()
        self.project_started()
        _log.info("Video project started", extra={"project_id": project_id})
        succeeded = False
        try:
            with project_scope(project_id):
                yield
            succeeded = True
        finally:
            duration = self._clock() - started
            cost = self.project_cost(project_id)
            self.project_finished(succeeded, duration, cost)
            fields: dict[str, object] = {
                "project_id": project_id,
                "outcome": ResultOutcome.SUCCESS if succeeded else ResultOutcome.FAILURE,
                "duration_ms": round(duration * 1000, 1),
            }
            if cost is not None:
                fields["cost_usd"] = cost
                self._keep_completed(project_id, cost, str(fields["outcome"]))
            _log.log(logging.INFO if succeeded else logging.ERROR, "Video project finished", extra=fields)

    def user_active(self, user_id: str) -> None:
        try:
            self.active_users.record(user_id)
        except Exception:
            _log.debug("could not record active user", exc_info=True)
