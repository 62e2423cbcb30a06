"""The counters the alert rules read exist at 0 from a process's set-up, so a first failure is an increase from 0."""

from __future__ import annotations

import pytest

from otel_monitor.instrument.error_codes import ProviderFailure, provider_error_code
from otel_monitor.instrument.metrics import ResultOutcome
from otel_monitor.instrument.providers import SERVICE_KEYS
from otel_monitor.instrument.settings import TelemetrySettings
from otel_monitor.instrument.telemetry import track_external_call
from otel_monitor.testing import capture_telemetry


def _settings() -> TelemetrySettings:
    """Settings that reach no collector or Redis, whatever the environment says."""
    return TelemetrySettings(
        service_name="counters-at-zero",
        redis_url=None,
        host_metrics=False,
        otlp_endpoint="http://127.0.0.1:9",
        export_logs=False,
    )


def _key(**labels: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


STARTED_AT_ZERO = [
    (
        "external_api.errors",
        {
            _key(service=service, error_code=provider_error_code(service, failure))
            for service in SERVICE_KEYS
            for failure in ProviderFailure
        },
    ),
    ("external_api.retries", {_key(service=service) for service in SERVICE_KEYS}),
    (
        "external_api.token_refreshes",
        {_key(service=service, outcome=outcome) for service in SERVICE_KEYS for outcome in ResultOutcome.ALL},
    ),
    ("video_projects.started", {()}),
    ("video_projects.completed", {_key(outcome=outcome) for outcome in ResultOutcome.ALL}),
]


@pytest.mark.parametrize(("instrument", "label_sets"), STARTED_AT_ZERO, ids=[row[0] for row in STARTED_AT_ZERO])
def test_every_known_label_set_is_exported_at_zero_from_set_up(instrument, label_sets):
    """Each counter a rule reads has a point at 0 for every label set a provider call (or project) can produce,
    collection after collection (cumulative), before anything was recorded."""
    with capture_telemetry(_settings(), instrument_httpx=False) as captured:
        for _collection in range(2):
            assert captured.points(instrument) == dict.fromkeys(label_sets, 0)


def test_the_series_added_are_bounded_by_providers_and_error_codes():
    """14 series per provider (11 error codes, retries, 2 refresh outcomes) and 3 for projects: 59 in all; calls by
    outcome (the duration histogram) are not started, as recording would count a call."""
    with capture_telemetry(_settings(), instrument_httpx=False) as captured:
        points = [point for point in captured.collect() if point.name in dict(STARTED_AT_ZERO)]
        assert len(points) == len(SERVICE_KEYS) * (len(ProviderFailure) + 1 + len(ResultOutcome.ALL)) + 3 == 59
        assert captured.points("external_api.call.duration") == {}


def test_a_first_failure_is_an_increase_of_the_existing_series():
    """The first rejected call adds 1 to its series, already at 0; no series is created and the others stay 0."""
    with capture_telemetry(_settings(), instrument_httpx=False) as captured:
        before = captured.points("external_api.errors")
        with track_external_call("gemini", "generate") as call:
            call.fail(ProviderFailure.INVALID_API_KEY)
        after = captured.points("external_api.errors")
    rejected = _key(service="gemini", error_code="GEMINI_INVALID_API_KEY")
    assert set(after) == set(before) and before[rejected] == 0 and after[rejected] == 1
    assert {key: value for key, value in after.items() if key != rejected} == dict.fromkeys(set(before) - {rejected}, 0)
