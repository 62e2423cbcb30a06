"""Tests for the JSON line logger: line shape, trace ids, redaction, log_operation and multi-process daily rotation."""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import io
import json
import logging
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import format_span_id, format_trace_id

from otel_monitor.logs.configure import configure_logging
from otel_monitor.logs.files import DailyRotatingFileHandler
from otel_monitor.logs.formatter import JsonLineFormatter
from otel_monitor.logs.logger import StructuredLogger
from otel_monitor.logs.operation import log_operation
from otel_monitor.logs.processors import TOP_LEVEL_KEYS
from otel_monitor.redaction.scrubber import SecretScrubber
from tests.support.paths import REPO_ROOT

PROJECT_ROOT = REPO_ROOT
JQ = "/usr/bin/jq"
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
DAY = 86400


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC).timestamp()


def strict_json(line: str) -> dict:
    """json.loads that also rejects NaN/Infinity, as jq and other strict parsers do."""

    def reject(constant: str) -> None:
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(line, parse_constant=reject)


def assert_jq_parses(path: Path) -> None:
    result = subprocess.run([JQ, "-c", ".", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"jq rejected {path.name}: {result.stderr}"


class FakeClock:
    """A settable clock: `clock()` returns `clock.now`."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class SteppingClock:
    """Returns the given readings one after another."""

    def __init__(self, *readings: float) -> None:
        self._readings = list(readings)

    def __call__(self) -> float:
        return self._readings.pop(0)


class Captured:
    """A StructuredLogger on a private stdlib logger whose JSON lines are kept in memory."""

    def __init__(self, formatter: JsonLineFormatter) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(formatter)
        self.stdlib = logging.getLogger(f"test.structured.{uuid.uuid4().hex}")
        self.stdlib.setLevel(logging.DEBUG)
        self.stdlib.propagate = False
        self.stdlib.addHandler(self.handler)
        self.logger = StructuredLogger(self.stdlib.name)

    def raw_lines(self) -> list[str]:
        return self.stream.getvalue().splitlines()

    def lines(self) -> list[dict]:
        return [strict_json(line) for line in self.raw_lines()]


@pytest.fixture
def captured():
    capture = Captured(JsonLineFormatter())
    yield capture
    capture.stdlib.removeHandler(capture.handler)


@pytest.fixture
def root_logging():
    """Restores the root logger's handlers and level after a test that calls configure_logging."""
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    yield root
    # Only ours: pytest swaps its own capture handlers on the root logger between test phases.
    for handler in list(root.handlers):
        if handler not in before and (handler.get_name() or "").startswith("otel_monitor."):
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


@pytest.fixture
def tracer():
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider.get_tracer("test.structured_logging")
    provider.shutdown()


# --- line shape ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("levelno", "level"),
    [
        (logging.DEBUG, "debug"),
        (logging.INFO, "info"),
        (logging.WARNING, "warning"),
        (logging.ERROR, "error"),
        (logging.CRITICAL, "critical"),
    ],
)
def test_line_has_the_fixed_shape(levelno, level):
    """A record renders as one line: the six top-level keys first, lowercase level, extras after, nesting kept."""
    record = logging.makeLogRecord(
        {
            "name": "otel_monitor.alerts",
            "levelno": levelno,
            "levelname": logging.getLevelName(levelno),
            "msg": "P0 Alert: API Key Invalid",
            "created": utc(2025, 10, 20, 10, 30, 15) + 0.123,
            "alert_priority": "P0",
            "error_code": "GEMINI_INVALID_API_KEY",
            "details": {"service": "gemini", "action_required": "Check GEMINI_API_KEY in environment variables"},
        }
    )

    line = JsonLineFormatter().format(record)

    assert "\n" not in line
    assert strict_json(line) == {
        "trace_id": None,
        "span_id": None,
        "timestamp": "2025-10-20T10:30:15.123Z",
        "level": level,
        "message": "P0 Alert: API Key Invalid",
        "logger": "otel_monitor.alerts",
        "alert_priority": "P0",
        "error_code": "GEMINI_INVALID_API_KEY",
        "details": {"service": "gemini", "action_required": "Check GEMINI_API_KEY in environment variables"},
    }
    assert list(strict_json(line))[:6] == list(TOP_LEVEL_KEYS)


@pytest.mark.parametrize(
    ("call", "expected_extras"),
    [
        (
            lambda log: log.error("Quota critical", extra={"service": "gemini", "quota_percentage": 95.0}),
            {"service": "gemini", "quota_percentage": 95.0},
        ),
        (
            lambda log: log.warning("Quota high", service="gemini", quota_used=800, quota_total=1000),
            {"service": "gemini", "quota_used": 800, "quota_total": 1000},
        ),
        (lambda log: log.info("merged", extra={"a": 1, "b": 1}, b=2), {"a": 1, "b": 2}),
        (
            lambda log: log.info("reserved names", filename="intro.mp4", module="render", name="job-7"),
            {"filename": "intro.mp4", "module": "render", "name": "job-7"},
        ),
        (lambda log: log.info('multi\nline "quoted" ünïcode'), {}),
    ],
    ids=["extra", "keyword-fields", "fields-override-extra", "record-attribute-names", "escaping"],
)
def test_structured_logger_fields_become_top_level_keys(captured, call, expected_extras):
    """extra= and keyword fields land after the fixed keys; names LogRecord reserves are kept without raising."""
    call(captured.logger)

    [line] = captured.lines()
    assert list(line)[:6] == list(TOP_LEVEL_KEYS)
    assert TIMESTAMP.match(line["timestamp"])
    assert line["logger"] == captured.stdlib.name
    assert {key: line[key] for key in list(line)[6:]} == expected_extras


@pytest.mark.parametrize(
    ("log_it", "expected_type", "expected_message"),
    [
        (lambda log: log.exception("upload failed"), "ValueError", "bad chunk"),
        (lambda log: log.error("upload failed", exc_info=True), "ValueError", "bad chunk"),
        (lambda log: log.warning("upload failed", exc_info=TimeoutError("slow")), "TimeoutError", "slow"),
        (
            lambda log: log.error("upload failed", exc_info=asyncio.InvalidStateError("odd")),
            "asyncio.exceptions.InvalidStateError",
            "odd",
        ),
    ],
    ids=["exception", "exc_info-true", "exc_info-instance", "qualified-type"],
)
def test_exception_is_rendered_as_type_message_stacktrace(captured, log_it, expected_type, expected_message):
    """exc_info renders as "exception": {type, message, stacktrace}, the type named as OpenTelemetry names it."""
    try:
        raise ValueError("bad chunk")
    except ValueError:
        log_it(captured.logger)

    [line] = captured.lines()
    assert line["exception"]["type"] == expected_type
    assert line["exception"]["message"] == expected_message
    assert expected_message in line["exception"]["stacktrace"]


# --- trace context ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [0, 1, 2], ids=["no-span", "root-span", "child-span"])
def test_trace_and_span_ids_are_those_of_the_current_span(captured, tracer, depth):
    """trace_id/span_id are the current span's ids as 32/16 lowercase hex, and null when no span is current."""
    spans = []

    def log_inside(level: int) -> None:
        if level == depth:
            captured.logger.info("inside")
            return
        with tracer.start_as_current_span(f"span-{level}") as span:
            spans.append(span)
            log_inside(level + 1)

    log_inside(0)
    captured.logger.info("after")

    inside, after = captured.lines()
    if depth == 0:
        assert (inside["trace_id"], inside["span_id"]) == (None, None)
    else:
        context = spans[-1].get_span_context()
        assert inside["trace_id"] == format_trace_id(context.trace_id)
        assert inside["span_id"] == format_span_id(context.span_id)
        assert re.fullmatch(r"[0-9a-f]{32}", inside["trace_id"]) and re.fullmatch(r"[0-9a-f]{16}", inside["span_id"])
    assert (after["trace_id"], after["span_id"]) == (None, None)


# --- stdlib integration -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "log_it",
    [
        lambda log, fields: log.error("Quota critical", extra=fields),
        lambda log, fields: log.error("Quota critical", **fields),
    ],
    ids=["extra", "keyword-fields"],
)
def test_caplog_sees_structured_logger_records(caplog, log_it):
    """Records go through stdlib logging: caplog sees the message, the level, the fields and the caller's function."""
    fields = {
        "alert_priority": "P1",
        "service": "gemini",
        "quota_used": 950,
        "quota_total": 1000,
        "quota_percentage": 95.0,
    }
    with caplog.at_level(logging.INFO):
        log_it(StructuredLogger("otel_monitor.quota"), fields)

    [record] = caplog.records
    assert record.message == "Quota critical"
    assert record.levelno == logging.ERROR
    assert record.name == "otel_monitor.quota"
    assert {key: getattr(record, key) for key in fields} == fields
    assert record.funcName == "<lambda>"


# --- secrets ------------------------------------------------------------------------------------------------------

REGISTERED = "sk-registered-0123456789"


class _LeakyObject:
    def __str__(self) -> str:
        return f"client(token={REGISTERED})"


def _log_exception_with_key(log: StructuredLogger) -> None:
    try:
        raise RuntimeError("upstream rejected key AIzaSyD-0123456789abcdefghijklmno")
    except RuntimeError:
        log.exception("call failed")


@pytest.mark.parametrize(
    ("log_it", "secret"),
    [
        (lambda log: log.info(f"using {REGISTERED} for the call"), REGISTERED),
        (
            lambda log: log.info("request", url="https://api.example.com/v1/models?key=plainkey987654&alt=json"),
            "plainkey987654",
        ),
        (
            lambda log: log.error("denied", details={"request": {"auth": "sent Bearer tok_abcdef123456"}}),
            "tok_abcdef123456",
        ),
        (
            lambda log: log.error("denied", details={"headers": {"Authorization": "Bearer tok_abcdef123456"}}),
            "tok_abcdef123456",
        ),
        (
            lambda log: log.error("denied", details={"request": "Authorization: Bearer tok_abcdef123456"}),
            "tok_abcdef123456",
        ),
        (lambda log: log.info("headers", headers={"x-goog-api-key": "zzz-header-secret"}), "zzz-header-secret"),
        (lambda log: log.info("client", client=_LeakyObject()), REGISTERED),
        (lambda log: log.info("listed", attempts=[f"retry with {REGISTERED}"]), REGISTERED),
        (_log_exception_with_key, "AIzaSyD-0123456789abcdefghijklmno"),
    ],
    ids=[
        "registered-value",
        "query-key",
        "bearer-nested",
        "authorization-header-key",
        "authorization-bearer-text",
        "sensitive-header",
        "object-str",
        "list",
        "exception",
    ],
)
def test_secrets_never_reach_the_log_file(tmp_path, root_logging, log_it, secret):
    """Registered values, ?key=, Bearer tokens, sensitive headers and exception text are scrubbed before the file."""
    configure_logging(log_dir=tmp_path, console=False, scrubber=SecretScrubber([REGISTERED]))

    log_it(StructuredLogger("otel_monitor.secrets"))

    text = (tmp_path / "app.log").read_text()
    assert secret not in text
    assert "REDACTED" in text
    assert_jq_parses(tmp_path / "app.log")


def test_a_failing_handler_reports_the_record_scrubbed(tmp_path, root_logging, capsys):
    """When a handler cannot write (a closed console), stdlib's error report on stderr carries the scrubbed message."""
    (console, _file) = configure_logging(log_dir=tmp_path, console=True, scrubber=SecretScrubber([REGISTERED]))
    closed = io.StringIO()
    closed.close()
    console.stream = closed

    logging.getLogger("backend.host").error("provider answered %s", f"bad key {REGISTERED}")

    report = capsys.readouterr().err
    assert "--- Logging error ---" in report and "provider answered bad key REDACTED" in report
    assert REGISTERED not in report


# --- robustness ---------------------------------------------------------------------------------------------------


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no str for you")


def _circular() -> dict:
    loop: dict = {"name": "loop"}
    loop["self"] = loop
    return loop


@pytest.mark.parametrize(
    "value",
    [
        object(),
        {1, 2},
        b"\x00bytes",
        dt.datetime(2025, 10, 20, tzinfo=dt.UTC),
        decimal.Decimal("1.10"),
        float("nan"),
        float("inf"),
        _circular(),
        {("tuple", "key"): 1},
        _Unprintable(),
        Path("/tmp/x"),
        10**40,
    ],
    ids=[
        "object",
        "set",
        "bytes",
        "datetime",
        "decimal",
        "nan",
        "inf",
        "circular",
        "tuple-key",
        "unprintable",
        "path",
        "big-int",
    ],
)
def test_non_serialisable_extra_does_not_raise(captured, value):
    """Any extra value renders (unknown ones as their str()) into one strict JSON line; logging never raises."""
    captured.logger.info("odd value", value=value)

    [line] = captured.lines()
    assert line["message"] == "odd value"
    assert "value" in line


@pytest.mark.parametrize(
    ("msg", "args", "expected"),
    [("100% done", (), "100% done"), ("%s of %s", (1, 2), "1 of 2"), ("%d items", ("x",), "%d items ('x',)")],
    ids=["percent-without-args", "args", "bad-args"],
)
def test_message_formatting_never_raises(msg, args, expected):
    """Messages with %-args render like stdlib logging; arguments that do not fit are kept instead of raising."""
    record = logging.makeLogRecord({"name": "otel_monitor.format", "msg": msg, "args": args})

    line = strict_json(JsonLineFormatter().format(record))

    assert line["message"] == expected


# --- log_operation ------------------------------------------------------------------------------------------------


class UploadError(Exception):
    pass


def _run_operation(mode: str, logger: StructuredLogger, clock, fail: UploadError | None) -> str:
    def body() -> str:
        if fail is not None:
            raise fail
        return "done"

    async def async_body() -> str:
        await asyncio.sleep(0)
        return body()

    if mode == "with":
        with log_operation(logger, "upload", clock=clock, video_id=7):
            return body()
    if mode == "decorator":
        return log_operation(logger, "upload", clock=clock, video_id=7)(body)()
    if mode == "async-with":

        async def run() -> str:
            async with log_operation(logger, "upload", clock=clock, video_id=7):
                return await async_body()

        return asyncio.run(run())
    if mode == "async-decorator":
        return asyncio.run(log_operation(logger, "upload", clock=clock, video_id=7)(async_body)())
    raise AssertionError(mode)


MODES = ["with", "decorator", "async-with", "async-decorator"]


@pytest.mark.parametrize("mode", MODES)
def test_log_operation_logs_start_and_finish_with_duration(captured, mode):
    """A successful operation logs "<op> started" and "<op> finished" with duration_ms from the injected clock."""
    result = _run_operation(mode, captured.logger, SteppingClock(10.0, 10.25), fail=None)

    started, finished = captured.lines()
    assert result == "done"
    assert (started["message"], started["level"], started["operation"], started["video_id"]) == (
        "upload started",
        "info",
        "upload",
        7,
    )
    assert "duration_ms" not in started
    assert (finished["message"], finished["level"], finished["duration_ms"], finished["video_id"]) == (
        "upload finished",
        "info",
        250.0,
        7,
    )


@pytest.mark.parametrize("mode", MODES)
def test_log_operation_logs_failure_and_reraises_the_same_exception(captured, mode):
    """A failing operation logs "<op> failed" at ERROR with duration_ms and the exception, then re-raises it as is."""
    error = UploadError("quota exhausted")

    with pytest.raises(UploadError) as raised:
        _run_operation(mode, captured.logger, SteppingClock(10.0, 10.5), fail=error)

    started, failed = captured.lines()
    assert raised.value is error
    assert started["message"] == "upload started"
    assert (failed["message"], failed["level"], failed["duration_ms"]) == ("upload failed", "error", 500.0)
    assert failed["exception"]["type"].endswith("UploadError")
    assert failed["exception"]["message"] == "quota exhausted"


def test_log_operation_decorator_times_each_call_separately(captured):
    """A decorated function is timed per call, also when calls overlap in asyncio tasks."""
    clock = SteppingClock(1.0, 2.0, 2.5, 4.0)  # enter A, enter B, exit A (1.5 s), exit B (2.0 s)

    @log_operation(captured.logger, "render", clock=clock)
    async def render(gate: asyncio.Event, release: asyncio.Event | None) -> None:
        gate.set()
        if release is not None:
            await release.wait()

    async def run() -> None:
        a_in, b_in, a_done = asyncio.Event(), asyncio.Event(), asyncio.Event()
        first = asyncio.create_task(render(a_in, b_in))
        await a_in.wait()
        second = asyncio.create_task(render(b_in, a_done))
        await first
        a_done.set()
        await second

    asyncio.run(run())

    durations = [line["duration_ms"] for line in captured.lines() if line["message"] == "render finished"]
    assert durations == [1500.0, 2000.0]


# --- configure_logging --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("console", [True, False], ids=["console", "file-only"])
def test_configure_logging_twice_does_not_duplicate_lines(tmp_path, root_logging, capsys, console):
    """Calling configure_logging again replaces its own handlers: each record is written once per destination."""
    configure_logging(log_dir=tmp_path, console=console)
    installed = configure_logging(log_dir=tmp_path, console=console, level="DEBUG")

    StructuredLogger("otel_monitor.configure").debug("once", attempt=1)

    ours = [h for h in root_logging.handlers if (h.get_name() or "").startswith("otel_monitor.")]
    assert ours == installed
    assert len(installed) == (2 if console else 1)
    assert [strict_json(line)["message"] for line in (tmp_path / "app.log").read_text().splitlines()] == ["once"]
    stderr = [line for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    assert [strict_json(line)["message"] for line in stderr] == (["once"] if console else [])


@pytest.mark.parametrize("level", ["LOUD", "", -1.5])
def test_configure_logging_rejects_bad_level_without_changing_anything(tmp_path, root_logging, level):
    """An unknown level raises before any handler is installed or removed."""
    before = list(root_logging.handlers)

    with pytest.raises((ValueError, TypeError)):
        configure_logging(log_dir=tmp_path, level=level)

    assert root_logging.handlers == before


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.parametrize("child_reconfigures", [True, False], ids=["child-reconfigures", "child-inherits"])
def test_logging_keeps_working_after_fork(tmp_path, root_logging, child_reconfigures):
    """A forked child logs to the same file, with the inherited handlers or after calling configure_logging itself."""
    configure_logging(log_dir=tmp_path, console=False)
    logger = StructuredLogger("otel_monitor.fork")
    logger.info("parent before fork")

    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            if child_reconfigures:
                configure_logging(log_dir=tmp_path, console=False)
            for seq in range(200):
                logger.info("child", seq=seq)
            code = 0
        finally:
            os._exit(code)
    for seq in range(200):
        logger.info("parent", seq=seq)
    _, status = os.waitpid(pid, 0)

    assert os.waitstatus_to_exitcode(status) == 0
    lines = [strict_json(line) for line in (tmp_path / "app.log").read_text().splitlines()]
    # Only this test's logger: a child may also log for others (the OTel SDK revives a shut-down metric reader
    # left from an earlier test in every forked child, and it warns once there).
    lines = [line for line in lines if line["logger"] == "otel_monitor.fork"]
    assert sorted((line["message"], line.get("seq", -1)) for line in lines) == sorted(
        [("parent before fork", -1)] + [(who, seq) for who in ("child", "parent") for seq in range(200)]
    )


# --- daily rotation -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "step_days", "backup_days", "expected_rotated"),
    [(40, 1, 30, 30), (5, 1, 30, 4), (12, 1, 3, 3), (20, 3, 5, 5)],
    ids=["40-days-keep-30", "fewer-than-kept", "keep-3", "quiet-days-skipped"],
)
def test_midnight_rotation_keeps_backup_days_files_named_by_date(
    tmp_path, days, step_days, backup_days, expected_rotated
):
    """At midnight UTC app.log becomes app.log.YYYY-MM-DD of the day it covers; only the newest backup_days stay."""
    clock = FakeClock(utc(2025, 1, 1))
    handler = DailyRotatingFileHandler(tmp_path / "app.log", backup_days=backup_days, clock=clock)
    handler.setFormatter(JsonLineFormatter())
    stdlib = logging.getLogger(f"test.rotation.{uuid.uuid4().hex}")
    stdlib.propagate = False
    stdlib.addHandler(handler)
    logger = StructuredLogger(logger=stdlib)
    logged_days = []
    try:
        for index in range(days):
            day_start = utc(2025, 1, 1) + index * step_days * DAY
            date = dt.datetime.fromtimestamp(day_start, dt.UTC).date().isoformat()
            logged_days.append(date)
            # The first second of the day and the last one belong to the same file.
            for offset in (0, 12 * 3600, DAY - 0.5):
                clock.now = day_start + offset
                logger.warning("tick", day=date)
    finally:
        stdlib.removeHandler(handler)
        handler.close()

    rotated = sorted(path.name for path in tmp_path.glob("app.log.*"))
    expected_dates = logged_days[:-1][-expected_rotated:]
    assert rotated == [f"app.log.{date}" for date in expected_dates]
    for date in expected_dates:
        assert {strict_json(line)["day"] for line in (tmp_path / f"app.log.{date}").read_text().splitlines()} == {date}
    current = [strict_json(line) for line in (tmp_path / "app.log").read_text().splitlines()]
    assert [line["day"] for line in current] == [logged_days[-1]] * 3


WRITER = r"""
import os, sys, time
from otel_monitor.logs.configure import configure_logging
from otel_monitor.logs.logger import StructuredLogger

log_dir, writer, count, start, step = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])

class Clock:
    now = start
    def __call__(self):
        return self.now

clock = Clock()
configure_logging(log_dir=log_dir, level="INFO", console=False, clock=clock)
logger = StructuredLogger("writer")
open(os.path.join(log_dir, "..", f"ready-{writer}"), "w").close()
deadline = time.monotonic() + 60
while not os.path.exists(os.path.join(log_dir, "..", "go")):
    if time.monotonic() > deadline:
        sys.exit("no go signal")
    time.sleep(0.002)
for seq in range(count):
    clock.now = start + seq * step
    logger.info("line", writer=writer, seq=seq, padding="x" * (seq % 97))
"""


@pytest.mark.parametrize(
    ("writers", "lines", "days"),
    [(4, 2000, 2), (3, 600, 6)],
    ids=["4x2000-two-midnights", "3x600-six-midnights"],
)
def test_concurrent_writer_processes_lose_and_duplicate_no_line(tmp_path, writers, lines, days):
    """Lines from concurrent processes crossing midnight appear exactly once across app.log and its dated files."""
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    start = utc(2025, 10, 20, 12)
    step = days * DAY / lines  # every process walks its own clock across `days` midnights
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(log_dir), str(writer), str(lines), str(start), str(step)],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for writer in range(writers)
    ]
    try:
        deadline = time.monotonic() + 30
        while not all((tmp_path / f"ready-{writer}").exists() for writer in range(writers)):
            assert all(p.poll() is None for p in processes), [p.communicate() for p in processes]
            assert time.monotonic() < deadline, "writers did not start"
            time.sleep(0.01)
        (tmp_path / "go").touch()
        outputs = [process.communicate(timeout=50) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    assert [process.returncode for process in processes] == [0] * writers, outputs
    assert all(stderr == "" for _, stderr in outputs), outputs

    files = sorted(log_dir.glob("app.log*"))
    dates = [(dt.date(2025, 10, 20) + dt.timedelta(days=offset)).isoformat() for offset in range(days)]
    assert [path.name for path in files] == ["app.log"] + [f"app.log.{date}" for date in dates]
    seen = []
    for path in files:
        assert_jq_parses(path)
        covers = path.name.removeprefix("app.log.") if path.name != "app.log" else "9999-12-31"
        for line in map(strict_json, path.read_text().splitlines()):
            seen.append((line["writer"], line["seq"]))
            # A line may land in a later day's file (another process rotated first), never in an earlier one.
            written_on = dt.datetime.fromtimestamp(start + line["seq"] * step, dt.UTC).date().isoformat()
            assert written_on <= covers, (path.name, line)
    assert len(seen) == writers * lines
    assert set(seen) == {(str(writer), seq) for writer in range(writers) for seq in range(lines)}
