"""Maintenance windows: on their days, in their time zone's wall clock, across midnight and DST changes."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from otel_monitor.monitor.alerting.silences.windows import MaintenanceWindow
from otel_monitor.monitor.config import MonitorConfig
from otel_monitor.monitor.config_file import ConfigError, load_config_file
from tests.support.alerts import make_alert

PARIS = "Europe/Paris"


def window(**fields) -> MaintenanceWindow:
    return MaintenanceWindow.model_validate({"name": "nightly", "matchers": ["service=gemini"], **fields})


@pytest.mark.parametrize(
    ("fields", "local", "open_"),
    [
        # 02:00-04:00 every day, Paris (UTC+1 in winter): start included, end excluded.
        ({"start": "02:00", "end": "04:00"}, "2026-01-14T01:59+01:00", False),
        ({"start": "02:00", "end": "04:00"}, "2026-01-14T02:00+01:00", True),
        ({"start": "02:00", "end": "04:00"}, "2026-01-14T03:59+01:00", True),
        ({"start": "02:00", "end": "04:00"}, "2026-01-14T04:00+01:00", False),
        # Summer (UTC+2): the same wall-clock hours.
        ({"start": "02:00", "end": "04:00"}, "2026-07-14T02:30+02:00", True),
        ({"start": "02:00", "end": "04:00"}, "2026-07-14T01:30+01:00", True),  # 02:30 in Paris
        # Crossing midnight, on Fridays only (2026-01-16 is a Friday): Friday evening and Saturday morning.
        ({"start": "22:00", "end": "02:00", "days": ["fri"]}, "2026-01-16T21:59+01:00", False),
        ({"start": "22:00", "end": "02:00", "days": ["fri"]}, "2026-01-16T23:00+01:00", True),
        ({"start": "22:00", "end": "02:00", "days": ["fri"]}, "2026-01-17T01:59+01:00", True),
        ({"start": "22:00", "end": "02:00", "days": ["fri"]}, "2026-01-17T02:00+01:00", False),
        ({"start": "22:00", "end": "02:00", "days": ["fri"]}, "2026-01-17T23:00+01:00", False),  # Saturday evening
        ({"start": "22:00", "end": "02:00", "days": ["fri"]}, "2026-01-16T01:00+01:00", False),  # Thursday's night
        # Weekdays only.
        ({"start": "09:00", "end": "10:00", "days": ["mon", "tue"]}, "2026-01-13T09:30+01:00", True),  # Tuesday
        ({"start": "09:00", "end": "10:00", "days": ["mon", "tue"]}, "2026-01-14T09:30+01:00", False),  # Wednesday
        # DST starts in Paris on 2026-03-29 at 02:00 -> 03:00: 02:00-04:00 is open from 03:00 (01:00 UTC) only.
        ({"start": "02:00", "end": "04:00"}, "2026-03-29T00:59+00:00", False),
        ({"start": "02:00", "end": "04:00"}, "2026-03-29T01:00+00:00", True),
        ({"start": "02:00", "end": "04:00"}, "2026-03-29T01:59+00:00", True),
        ({"start": "02:00", "end": "04:00"}, "2026-03-29T02:00+00:00", False),
        # DST ends on 2026-10-25 at 03:00 -> 02:00: 02:00-04:00 lasts three hours (00:00 to 03:00 UTC).
        ({"start": "02:00", "end": "04:00"}, "2026-10-24T23:59+00:00", False),
        ({"start": "02:00", "end": "04:00"}, "2026-10-25T00:00+00:00", True),
        ({"start": "02:00", "end": "04:00"}, "2026-10-25T02:59+00:00", True),
        ({"start": "02:00", "end": "04:00"}, "2026-10-25T03:00+00:00", False),
    ],
)
def test_window_open_at(fields, local, open_):
    """Whether the window is open at a moment given with its UTC offset."""
    assert window(time_zone=PARIS, **fields).is_open(dt.datetime.fromisoformat(local)) is open_


def test_window_holds_only_matching_alerts():
    """An open window holds the alerts its matchers match, nothing else."""
    nightly = window(start="00:00", end="23:59")
    now = dt.datetime(2026, 1, 14, 12, tzinfo=dt.UTC)
    assert nightly.holds(make_alert(labels={"service": "gemini"}), now)
    assert not nightly.holds(make_alert(labels={"service": "stability"}), now)


@pytest.mark.parametrize(
    ("fields", "key"),
    [
        ({"start": "2:00", "end": "04:00"}, "start"),
        ({"start": "02:00", "end": "24:00"}, "end"),
        ({"start": "02:00", "end": "02:00"}, "end"),
        ({"start": "02:00", "end": "04:00", "time_zone": "Mars/Olympus"}, "time_zone"),
        ({"start": "02:00", "end": "04:00", "days": ["monday"]}, "days"),
        ({"start": "02:00", "end": "04:00", "matchers": ["service"]}, "matchers"),
        ({"start": "02:00", "end": "04:00", "matchers": []}, "matchers"),
        ({"start": "02:00", "end": "04:00", "every": "day"}, "every"),
    ],
)
def test_bad_windows_are_refused_naming_the_key(fields, key):
    """Each mistake is refused, the message naming the key."""
    entry = {"name": "nightly", "matchers": ["service=gemini"], **fields}
    with pytest.raises(ValidationError, match=key):
        MonitorConfig.model_validate({"alerting": {"maintenance_windows": [entry]}})


def test_config_file_error_names_file_line_and_key(tmp_path):
    """A bad window in the config file: the error names the file, the line and the key."""
    path = tmp_path / "monitor.yaml"
    path.write_text(
        "alerting:\n"
        "  maintenance_windows:\n"
        "    - name: nightly\n"
        "      matchers: [service=gemini]\n"
        "      time_zone: Europe/Paris\n"
        "      start: '02:00'\n"
        "      end: '4h'\n"
    )
    with pytest.raises(ConfigError) as raised:
        load_config_file(path, MonitorConfig)
    assert f"{path}:7" in str(raised.value)
    assert "alerting.maintenance_windows.0.end" in str(raised.value)


def test_window_names_are_unique():
    """Two windows of one name are refused."""
    entry = {"name": "n", "matchers": ["service=gemini"], "start": "02:00", "end": "03:00"}
    with pytest.raises(ValidationError, match="repeated"):
        MonitorConfig.model_validate({"alerting": {"maintenance_windows": [entry, entry]}})
