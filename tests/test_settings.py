"""Telemetry settings load from the environment and fail fast, naming the key, on bad values."""

import pytest
from pydantic import ValidationError

from otel_monitor.instrument.settings import TelemetrySettings


def test_settings_come_from_prefixed_environment(monkeypatch):
    """OTEL_MONITOR_* variables set the settings, JSON for mappings."""
    monkeypatch.setenv("OTEL_MONITOR_SERVICE_NAME", "video-api")
    monkeypatch.setenv("OTEL_MONITOR_PROVIDER_HOSTS", '{"gemini": ["127.0.0.1:18001"]}')
    settings = TelemetrySettings()
    assert settings.service_name == "video-api"
    assert settings.provider_hosts == {"gemini": ["127.0.0.1:18001"]}


@pytest.mark.parametrize("variable,value,key", [
    ("OTEL_MONITOR_PROVIDER_HOSTS", '{"openai": ["api.openai.com"]}', "provider_hosts"),
    ("OTEL_MONITOR_LOG_LEVEL", "LOUD", "log_level"),
    ("OTEL_MONITOR_EXPORT_TIMEOUT_SECONDS", "0", "export_timeout_seconds"),
    ("OTEL_MONITOR_METRIC_EXPORT_INTERVAL_SECONDS", "soon", "metric_export_interval_seconds"),
])
def test_bad_values_fail_at_load_naming_the_key(monkeypatch, variable, value, key):
    """An invalid value raises at load time, and the error names the setting."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as raised:
        TelemetrySettings()
    assert key in str(raised.value)
