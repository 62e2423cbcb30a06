"""Telemetry settings load from the environment and fail fast, naming the key, on bad values."""

import pytest
from pydantic import ValidationError

from otel_monitor.instrument.settings import TelemetrySettings

STANDARD_VARIABLES = (
    "OTEL_SERVICE_NAME",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_METRIC_EXPORT_INTERVAL",
    "OTEL_BSP_SCHEDULE_DELAY",
    "OTEL_BSP_MAX_QUEUE_SIZE",
    "OTEL_RESOURCE_ATTRIBUTES",
)


@pytest.fixture(autouse=True)
def no_standard_variables(monkeypatch):
    """Whatever the environment running the tests sets, each test starts without the SDK's variables."""
    for variable in STANDARD_VARIABLES:
        monkeypatch.delenv(variable, raising=False)


def test_settings_come_from_prefixed_environment(monkeypatch):
    """OTEL_MONITOR_* variables set the settings, JSON for mappings."""
    monkeypatch.setenv("OTEL_MONITOR_SERVICE_NAME", "video-api")
    monkeypatch.setenv("OTEL_MONITOR_PROVIDER_HOSTS", '{"gemini": ["127.0.0.1:18001"]}')
    settings = TelemetrySettings()
    assert settings.service_name == "video-api"
    assert settings.provider_hosts == {"gemini": ["127.0.0.1:18001"]}


@pytest.mark.parametrize(
    "variable,value,key",
    [
        ("OTEL_MONITOR_PROVIDER_HOSTS", '{"openai": ["api.openai.com"]}', "provider_hosts"),
        ("OTEL_MONITOR_LOG_LEVEL", "LOUD", "log_level"),
        ("OTEL_MONITOR_EXPORT_TIMEOUT_SECONDS", "0", "export_timeout_seconds"),
        ("OTEL_MONITOR_METRIC_EXPORT_INTERVAL_SECONDS", "soon", "metric_export_interval_seconds"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "soon", "metric_export_interval_seconds"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "0", "metric_export_interval_seconds"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "8", "span_queue_size"),
    ],
)
def test_bad_values_fail_at_load_naming_the_key(monkeypatch, variable, value, key):
    """An invalid value raises at load time, and the error names the setting."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as raised:
        TelemetrySettings()
    assert key in str(raised.value)


@pytest.mark.parametrize(
    "variable,value,key,expected",
    [
        ("OTEL_SERVICE_NAME", "video-worker", "service_name", "video-worker"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318", "otlp_endpoint", "http://collector:4318"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "60000", "metric_export_interval_seconds", 60.0),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "5000", "export_timeout_seconds", 5.0),
        ("OTEL_BSP_SCHEDULE_DELAY", "500", "span_schedule_delay_seconds", 0.5),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "4096", "span_queue_size", 4096),
        ("OTEL_RESOURCE_ATTRIBUTES", "team=video,service.name=video-api", "service_name", "video-api"),
        ("OTEL_RESOURCE_ATTRIBUTES", "service.version=1.4.2", "service_version", "1.4.2"),
        ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=staging", "environment", "staging"),
        ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=production", "environment", "production"),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment=old,deployment.environment.name=new",
            "environment",
            "new",
        ),
        ("OTEL_RESOURCE_ATTRIBUTES", "service.version=1.0%2Crc1", "service_version", "1.0,rc1"),
        ("OTEL_SERVICE_NAME", "", "service_name", "video-backend"),
    ],
)
def test_standard_variables_set_the_settings_they_name(monkeypatch, variable, value, key, expected):
    """The OpenTelemetry SDK's variables set the settings they name, durations given in milliseconds; an empty
    variable counts as unset."""
    monkeypatch.setenv(variable, value)
    assert getattr(TelemetrySettings(), key) == expected


@pytest.mark.parametrize(
    "standard,prefixed,key,expected",
    [
        (("OTEL_SERVICE_NAME", "standard-name"), ("OTEL_MONITOR_SERVICE_NAME", "own-name"), "service_name", "own-name"),
        (
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://standard:4318"),
            ("OTEL_MONITOR_OTLP_ENDPOINT", "http://own:4318"),
            "otlp_endpoint",
            "http://own:4318",
        ),
        (
            ("OTEL_METRIC_EXPORT_INTERVAL", "60000"),
            ("OTEL_MONITOR_METRIC_EXPORT_INTERVAL_SECONDS", "5"),
            "metric_export_interval_seconds",
            5.0,
        ),
        (
            ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=staging"),
            ("OTEL_MONITOR_ENVIRONMENT", "production"),
            "environment",
            "production",
        ),
        (
            ("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attributes"),
            ("OTEL_SERVICE_NAME", "from-variable"),
            "service_name",
            "from-variable",
        ),
    ],
)
def test_the_more_specific_variable_wins(monkeypatch, standard, prefixed, key, expected):
    """OTEL_MONITOR_* wins over the SDK's variable of the same setting, and OTEL_SERVICE_NAME over the
    service.name of OTEL_RESOURCE_ATTRIBUTES."""
    monkeypatch.setenv(*standard)
    monkeypatch.setenv(*prefixed)
    assert getattr(TelemetrySettings(), key) == expected


@pytest.mark.parametrize(
    "variable,value,key,argument",
    [
        ("OTEL_SERVICE_NAME", "standard-name", "service_name", "argument-name"),
        ("OTEL_MONITOR_SERVICE_NAME", "own-name", "service_name", "argument-name"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "60000", "metric_export_interval_seconds", 2.0),
    ],
)
def test_arguments_win_over_the_environment(monkeypatch, variable, value, key, argument):
    """Settings given as arguments (the monitor's config file) win over every environment variable."""
    monkeypatch.setenv(variable, value)
    assert getattr(TelemetrySettings(**{key: argument}), key) == argument
