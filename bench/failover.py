"""Monitor failover: three replicas on one PostgreSQL, the leader killed again and again; time to a new leader and to
the next P0 delivered.

Three `otel-monitor serve` with `ha.enabled` (leadership checked every second) on one database of the real
PostgreSQL, each checking one Redis of their own with a P0 rule (RedisDown, evaluated every second, no `for`)
routed to a local webhook. Each round, at the same instant: the leader is killed (SIGKILL of its process, or
with `--variant connection` its lock session terminated by `pg_terminate_backend`) and the watched Redis is
stopped. Measured from that instant: until exactly one other replica says it leads (each replica's
`/api/v1/system/health` "replica" field, polled every 100 ms), and until RedisDown's firing webhook arrives
(the new leader evaluates the rule: detection is part of it). Then Redis is started, the alert resolves, and the
killed replica is started again before the next round.

    .venv/bin/python -m bench.failover [--kills 10] [--variant process connection]
"""

from __future__ import annotations

import argparse
import statistics
import time

import httpx

from examples.monitor_launcher import MonitorProcess
from tests.support.backends import fresh_postgres_database
from tests.support.monitor import alerting_monitor
from tests.support.receivers import Receiver
from tests.support.replicas import RULES, lock_connection_backends, terminate_backends
from tools.devstack import DevStack, StackPorts, server_workdir, wait_until

REPLICAS = 3
# RedisDown alone: the pending second rule of the acceptance test plays no part here.
BENCH_RULES = {"rules": [rule for rule in RULES["rules"] if rule["name"] == "RedisDown"]}


def _status(replica: MonitorProcess) -> dict | None:
    try:
        return httpx.get(f"{replica.url}/api/v1/system/health", timeout=2).json()["replica"]
    except (httpx.HTTPError, ValueError, KeyError):
        return None


def _leader(replicas: dict[str, MonitorProcess], other_than: str | None = None) -> str | None:
    """The one replica that says it leads (and not ``other_than``), or None while it is not exactly one."""
    leaders = [rid for rid, replica in replicas.items() if (s := _status(replica)) and s["leader"]]
    if len(leaders) == 1 and leaders[0] != other_than:
        return leaders[0]
    return None


def _sent(receiver: Receiver, status: str, after: int) -> bool:
    return any(r["json"]["status"] == status for r in receiver.requests[after:] if r["path"] == "/hook")


def _summary(name: str, values: list[float]) -> str:
    return f"{name:44} {len(values):5d} {statistics.median(values):8.2f}s {max(values):8.2f}s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kills", type=int, default=10, help="rounds per variant")
    parser.add_argument("--variant", nargs="+", choices=["process", "connection"], default=["process", "connection"])
    args = parser.parse_args()
    workdir = server_workdir("otel-monitor-bench-failover-")
    stack = DevStack(workdir / "stack", StackPorts.free(), scrape_interval="1s")
    watched = DevStack(workdir / "watched", StackPorts.free())
    receiver = Receiver().start()
    replicas: dict[str, MonitorProcess] = {}
    results: dict[str, tuple[list[float], list[float]]] = {}
    try:
        stack.start("postgres", "redis", "collector", "prometheus")
        watched.start("redis")
        store_url = fresh_postgres_database(stack.postgres_url, "failover")
        for n in range(REPLICAS):
            replica_id = f"replica-{n}"
            replica = alerting_monitor(
                stack,
                workdir / replica_id,
                BENCH_RULES,
                {"hook": {"type": "webhook", "url": f"{receiver.url}/hook", "timeout_seconds": 2}},
                service_name="monitor-failover-bench",
                health={"redis_url": watched.redis_url},
                store_url=store_url,
            )
            replica.config["ha"] = {"enabled": True, "replica_id": replica_id, "check_interval_seconds": 1}
            replicas[replica_id] = replica.start()
        for variant in args.variant:
            to_leader: list[float] = []
            to_p0: list[float] = []
            for round_ in range(args.kills):
                leader = wait_until(lambda: _leader(replicas), 30, what="one leader")
                seen = len(receiver.requests)
                if variant == "process":
                    replicas[leader].process.kill()
                    killed_at = time.monotonic()
                    survivors = {rid: r for rid, r in replicas.items() if rid != leader}
                else:
                    (backend,) = lock_connection_backends(store_url, leader)
                    terminate_backends(store_url, [backend])
                    killed_at = time.monotonic()
                    survivors = replicas
                watched["redis"].stop()
                new = wait_until(
                    lambda survivors=survivors, leader=leader: _leader(survivors, other_than=leader),
                    60,
                    interval=0.1,
                    what="a new leader",
                )
                to_leader.append(time.monotonic() - killed_at)
                wait_until(lambda seen=seen: _sent(receiver, "firing", seen), 60, interval=0.05, what="the P0")
                to_p0.append(time.monotonic() - killed_at)
                print(
                    f"{variant} round {round_ + 1}: {leader} -> {new}: leader {to_leader[-1]:.2f}s, "
                    f"P0 {to_p0[-1]:.2f}s",
                    flush=True,
                )
                watched.processes["redis"] = watched.redis().start()
                wait_until(lambda seen=seen: _sent(receiver, "resolved", seen), 60, interval=0.2, what="resolved")
                if variant == "process":
                    replicas[leader].process = None
                    replicas[leader].start()
            results[variant] = (to_leader, to_p0)
    finally:
        for replica in replicas.values():
            replica.stop()
        receiver.stop()
        watched.stop()
        stack.stop()
    print(f"\n{'leader lost by':44} {'kills':>5} {'median':>9} {'max':>9}")
    for variant, (to_leader, to_p0) in results.items():
        what = "SIGKILL" if variant == "process" else "lock connection killed"
        print(_summary(f"{what}: to a new leader", to_leader))
        print(_summary(f"{what}: to the P0 delivered", to_p0))
    print("bound: a new leader within 15 s")


if __name__ == "__main__":
    main()
