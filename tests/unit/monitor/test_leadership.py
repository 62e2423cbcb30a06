"""Monitor replicas: the ``ha`` section's checks, the single replica that always leads, the health report's replica."""

from __future__ import annotations

import asyncio
import os
import socket

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from otel_monitor.monitor.cli import main
from otel_monitor.monitor.health.router import ReplicaStatus, build_health_router
from otel_monitor.monitor.health.service import HealthService
from otel_monitor.monitor.leadership import AlwaysLeader, HaConfig, replicas_need_postgres

_POSTGRES = "postgresql+psycopg://monitor@db.example:5432/monitor"


@pytest.mark.parametrize(
    "ha, store_url, refused",
    [
        ({}, "sqlite:///otel-monitor.db", False),
        ({"enabled": False}, "sqlite:///otel-monitor.db", False),
        ({"enabled": True}, "sqlite:///otel-monitor.db", True),
        ({"enabled": True}, "sqlite://", True),
        ({"enabled": True}, _POSTGRES, False),
    ],
)
def test_replicas_need_postgres(ha, store_url, refused):
    """Replicas on SQLite are refused at ``ha.enabled``; one replica on SQLite, or replicas on PostgreSQL, are not."""
    found = replicas_need_postgres(HaConfig.model_validate(ha), store_url)
    assert [loc for loc, _message in found] == ([("ha", "enabled")] if refused else [])


@pytest.mark.parametrize("command", [["check-config"], ["serve", "--config"]])
def test_check_config_and_serve_refuse_replicas_on_sqlite(tmp_path, capsys, command):
    """check-config and serve exit non-zero naming the file, the line and the key; both accept PostgreSQL."""
    path = tmp_path / "monitor.yaml"
    path.write_text("quota:\n  store_url: sqlite:///quota.db\nha:\n  enabled: true\n")
    assert main([*command, str(path)]) == 2
    assert f"{path}:4: ha.enabled: monitor replicas need a PostgreSQL alerting.store_url" in capsys.readouterr().err
    if command == ["check-config"]:
        path.write_text(f"alerting:\n  store_url: {_POSTGRES}\nha:\n  enabled: true\n")
        assert main([*command, str(path)]) == 0


@pytest.mark.parametrize("interval", [0, -1, 5.5])
def test_check_interval_keeps_failover_within_bounds(interval):
    """A check interval of zero or beyond 5 s (failover must stay well within 15 s) is a config error."""
    with pytest.raises(ValueError, match="check_interval_seconds"):
        HaConfig.model_validate({"check_interval_seconds": interval})


def test_a_single_replica_always_leads_and_is_named_hostname_pid():
    """Without replicas the monitor leads from the start, fenced by nothing, named hostname:pid unless configured."""
    leader = AlwaysLeader()
    assert (leader.replica_id, leader.is_leader, leader.enabled) == (
        f"{socket.gethostname()}:{os.getpid()}",
        True,
        False,
    )
    assert asyncio.run(leader.still_leading()) is True
    assert AlwaysLeader("monitor-a").replica_id == "monitor-a"


@pytest.mark.parametrize("leader", [True, False])
def test_health_report_says_which_replica_answers_and_whether_it_leads(leader):
    """The health report carries the replica's id, its leadership and whether replicas are on."""
    app = FastAPI()
    replica = ReplicaStatus(id="monitor-b", leader=leader, ha=True)
    app.include_router(build_health_router(HealthService([], timeout=1, ttl=300), lambda: replica))
    body = TestClient(app).get("/api/v1/system/health").json()
    assert body["replica"] == {"id": "monitor-b", "leader": leader, "ha": True}
