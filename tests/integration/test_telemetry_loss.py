"""Tests for telemetry the process drops to protect the host: exported as a metric, alerted on, and the OTLP log
bridge that only queues on the caller's thread."""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid

import pytest
import redis
from opentelemetry.sdk._logs import LogRecordProcessor
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, LogRecordExportResult, SimpleLogRecordProcessor
from opentelemetry.trace import INVALID_SPAN

from otel_monitor.instrument.metrics import DroppedSignal, DropReason, PromNames
from otel_monitor.instrument.redis_writer import RedisWriter, lost_writes
from otel_monitor.instrument.settings import TelemetrySettings
from otel_monitor.instrument.telemetry import setup_telemetry
from otel_monitor.logs.background import BackgroundLogHandler, dropped_log_lines
from otel_monitor.monitor.alerting.rules import load_rules
from otel_monitor.testing import CapturedTelemetry, capture_telemetry
from tests.support.backends import closed_port, prom_values, wait_for_prom
from tests.support.paths import REPO_ROOT

SHIPPED_RULES = REPO_ROOT / "config" / "alert-rules.yaml"
DROPPED = "otel_monitor.telemetry.dropped"
WAIT = 10  # seconds; a bound for threads that must move, never a measure of speed


class Blocker:
    """Blocks whoever calls it until released; `entered` says a caller is inside."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.released = threading.Event()

    def __call__(self, *_args) -> None:
        self.entered.set()
        self.released.wait(WAIT * 3)


class BlockingHandler(logging.Handler):
    def __init__(self, blocker: Blocker) -> None:
        super().__init__()
        self._blocker = blocker

    def emit(self, record: logging.LogRecord) -> None:
        self._blocker(record)


class BlockingProcessor(LogRecordProcessor):
    """A log record processor whose on_emit blocks, as a stuck synchronous exporter would."""

    def __init__(self, blocker: Blocker) -> None:
        self._blocker = blocker

    def on_emit(self, log_record) -> None:
        self._blocker(log_record)

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class BlockingExporter(InMemoryLogRecordExporter):
    def __init__(self, blocker: Blocker) -> None:
        super().__init__()
        self._blocker = blocker

    def export(self, batch) -> LogRecordExportResult:
        self._blocker(batch)
        return super().export(batch)


def unreachable_redis() -> redis.Redis:
    return redis.Redis(port=closed_port(), socket_timeout=0.25, socket_connect_timeout=0.25)


@pytest.fixture
def captured(tmp_path):
    """The process's telemetry with spans, metrics and OTLP log records in memory."""
    settings = TelemetrySettings(
        service_name="telemetry-loss-test",
        log_dir=str(tmp_path),
        console_logs=False,
        otlp_endpoint=f"http://127.0.0.1:{closed_port()}",
        redis_url=None,
    )
    with capture_telemetry(settings, instrument_httpx=False) as captured:
        yield captured


@pytest.fixture
def telemetry(captured):
    return captured.telemetry


@pytest.fixture
def app_logger():
    """A logger of the host at INFO that propagates to the root logger, where the OTLP bridge is installed."""
    logger = logging.getLogger(f"test.telemetry_loss.{uuid.uuid4().hex}")
    logger.setLevel(logging.INFO)
    return logger


def dropped(captured: CapturedTelemetry) -> dict[tuple[str, str], int]:
    """{(signal, reason): value} of otel_monitor.telemetry.dropped at one collection."""
    return {
        (point.labels["signal"], point.labels["reason"]): point.value
        for point in captured.collect()
        if point.name == DROPPED
    }


# --- losses, each returning the count its dropper keeps -----------------------------------------------------------
def fill_log_queue() -> int:
    blocker = Blocker()
    handler = BackgroundLogHandler([BlockingHandler(blocker)], max_queued=1)
    try:
        handler.handle(logging.makeLogRecord({"msg": "taken by the writer", "levelno": logging.INFO}))
        assert blocker.entered.wait(WAIT)
        for n in range(3):  # one waits in the queue, two are dropped
            handler.handle(logging.makeLogRecord({"msg": f"queued {n}", "levelno": logging.INFO}))
        return handler.dropped
    finally:
        blocker.released.set()
        handler.close()


def fill_redis_queue() -> int:
    blocker = Blocker()
    writer = RedisWriter(unreachable_redis(), max_queued=1)
    try:
        writer.submit(blocker)
        assert blocker.entered.wait(WAIT)
        for _ in range(3):
            writer.submit(lambda pipe: pipe.incr("otel-monitor-test"))
        return writer.dropped
    finally:
        blocker.released.set()
        writer.flush()


def fail_redis_writes() -> int:
    writer = RedisWriter(unreachable_redis())
    for _ in range(3):
        writer.submit(lambda pipe: pipe.incr("otel-monitor-test"))
    writer.flush()
    return writer.failed


@pytest.mark.parametrize(
    "signal,reason,lose",
    [
        (DroppedSignal.LOG_LINE, DropReason.QUEUE_FULL, fill_log_queue),
        (DroppedSignal.REDIS_WRITE, DropReason.QUEUE_FULL, fill_redis_queue),
        (DroppedSignal.REDIS_WRITE, DropReason.WRITE_FAILED, fail_redis_writes),
    ],
)
def test_each_loss_raises_the_dropped_counter_by_what_was_lost(captured, signal, reason, lose):
    """Dropped log lines and Redis writes raise otel_monitor.telemetry.dropped{signal, reason} by the dropped count."""
    before = dropped(captured)[signal, reason]
    lost = lose()
    assert lost > 0
    # At least: writers of other tests (an unreachable Redis) may still be failing in the background meanwhile.
    assert dropped(captured)[signal, reason] - before >= lost


def test_every_signal_and_reason_is_exported_before_any_loss(captured):
    """All series exist from set-up on, so the first loss of a process is an increase Prometheus can see."""
    assert set(dropped(captured)) == {
        (DroppedSignal.LOG_LINE, DropReason.QUEUE_FULL),
        (DroppedSignal.REDIS_WRITE, DropReason.QUEUE_FULL),
        (DroppedSignal.REDIS_WRITE, DropReason.WRITE_FAILED),
    }


def test_a_forked_child_starts_with_no_losses_and_counts_its_own():
    """After a fork the child reports only what it drops itself; the parent keeps its own count."""
    import os

    fill_log_queue()
    fail_redis_writes()
    parent = (dropped_log_lines(), lost_writes())
    assert parent[0] > 0 and parent[1].failed > 0
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            fresh = (dropped_log_lines(), lost_writes()) == (0, (0, 0))
            counted = fill_log_queue() == dropped_log_lines() > 0
            code = 0 if fresh and counted else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert dropped_log_lines() >= parent[0] and lost_writes().failed >= parent[1].failed


# --- the OTLP log bridge ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "depth,raises",
    [
        (1, False),  # in a span
        (2, False),  # in a child span: the innermost one
        (0, False),  # outside any span: no ids
        (1, True),  # an exception logged in a span keeps its ids and its exception attributes
    ],
)
def test_otlp_log_record_carries_the_span_active_at_the_call(telemetry, captured, app_logger, depth, raises):
    """An OTLP log record, translated on the writer thread, has the trace_id/span_id of the span that logged it."""
    message = f"logged at depth {depth}"
    tracer = telemetry.tracer_provider.get_tracer("test.telemetry_loss")
    with contextlib.ExitStack() as spans:
        span = INVALID_SPAN
        for level in range(depth):
            span = spans.enter_context(tracer.start_as_current_span(f"level {level}"))
        try:
            if raises:
                raise ValueError("boom")
            app_logger.warning(message)
        except ValueError:
            app_logger.exception(message)
    expected = span.get_span_context()
    telemetry.force_flush()
    [record] = [record for record in captured.log_records() if record.body == message]
    assert (record.trace_id, record.span_id) == (expected.trace_id, expected.span_id)
    if raises:
        assert record.attributes["exception.type"] == "ValueError"
        assert record.attributes["exception.message"] == "boom"
        assert 'raise ValueError("boom")' in record.attributes["exception.stacktrace"]
    assert not any(key.startswith("_") for key in record.attributes)


@pytest.mark.parametrize(
    "stuck",
    [
        pytest.param(BlockingProcessor, id="processor blocks"),
        pytest.param(
            lambda blocker: SimpleLogRecordProcessor(BlockingExporter(blocker)), id="synchronous export blocks"
        ),
    ],
)
def test_blocked_otlp_path_costs_the_caller_only_an_enqueue(telemetry, captured, app_logger, stuck):
    """While the OTLP log path is blocked, a logging call returns; the record is exported once the path frees up."""
    blocker = Blocker()
    telemetry.logger_provider.add_log_record_processor(stuck(blocker))
    caller = threading.Thread(target=app_logger.error, args=("while the bridge is stuck",), daemon=True)
    try:
        caller.start()
        assert blocker.entered.wait(WAIT)
        caller.join(WAIT)
        assert not caller.is_alive()  # it returned while the OTLP path is still blocked
        assert not blocker.released.is_set()
    finally:
        blocker.released.set()
    telemetry.force_flush()
    assert [record.body for record in captured.log_records()] == ["while the bridge is stuck"]


class FailingOnceProcessor(LogRecordProcessor):
    """A log record processor that raises on its first record, as a broken exporter path would."""

    def __init__(self) -> None:
        self.calls = 0

    def on_emit(self, log_record) -> None:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("log path broken once")

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def test_a_failing_otlp_path_does_not_end_the_bridge(telemetry, captured, app_logger):
    """A record whose export raises is lost alone: the bridge's writer thread lives on and exports the next one."""
    failing = FailingOnceProcessor()
    telemetry.logger_provider.add_log_record_processor(failing)
    app_logger.error("first: its export raises")
    app_logger.error("second: exported")
    telemetry.force_flush()
    assert failing.calls == 2
    assert "second: exported" in [record.body for record in captured.log_records()]


# --- through the collector to Prometheus and the shipped rule -----------------------------------------------------
@pytest.mark.stack
def test_dropped_lines_reach_prometheus_and_fire_the_shipped_rule(stack, tmp_path):
    """Dropped lines arrive as otel_monitor_telemetry_dropped_total{job, signal} and TelemetryDropped fires for it."""
    job = f"loss-{uuid.uuid4().hex[:8]}"
    settings = TelemetrySettings(
        service_name=job,
        otlp_endpoint=stack.otlp_http_endpoint,
        log_dir=str(tmp_path),
        console_logs=False,
        export_logs=False,
        metric_export_interval_seconds=1,
    )
    telemetry = setup_telemetry(settings, set_global=False, configure_logs=False, instrument_httpx=False)
    series = f'{PromNames.TELEMETRY_DROPPED}{{job="{job}", signal="{DroppedSignal.LOG_LINE}"}}'
    [rule] = [rule for rule in load_rules(SHIPPED_RULES, promtool=None) if rule.name == "TelemetryDropped"]
    try:
        # A first sample, then a higher one: increase() needs both.
        expected = {(DropReason.QUEUE_FULL,): float(dropped_log_lines())}
        assert wait_for_prom(stack.prometheus_url, series, ("reason",), expected) == expected
        fill_log_queue()
        expected = {(DropReason.QUEUE_FULL,): float(dropped_log_lines())}
        assert wait_for_prom(stack.prometheus_url, series, ("reason",), expected) == expected
        firing = prom_values(stack.prometheus_url, rule.expr, ("job", "signal"))
        assert {signal for job_label, signal in firing if job_label == job} == {DroppedSignal.LOG_LINE}
    finally:
        telemetry.shutdown()
