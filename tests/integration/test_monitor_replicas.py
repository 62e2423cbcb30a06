"""Three served monitor replicas on one PostgreSQL: one leads; a killed leader, or its killed lock connection, hands
over within 15 s, and every notification reaches the webhook exactly once."""

from __future__ import annotations

import asyncio
import collections
import time

import httpx
import pytest

from examples.monitor_launcher import MonitorProcess
from otel_monitor.monitor.leadership import AdvisoryLockLeadership
from tests.support.monitor import alerting_monitor
from tests.support.replicas import RULES, lock_connection_backends, terminate_backends
from tools.devstack import wait_until

# A new leader must lead within this long of the old one's death (the bound).
FAILOVER_BOUND_SECONDS = 15


def _replica(stack, own_redis, receiver, workdir, store_url: str, replica_id: str) -> MonitorProcess:
    process = alerting_monitor(
        stack,
        workdir / replica_id,
        RULES,
        {"ops-hook": {"type": "webhook", "url": f"{receiver.url}/hook", "timeout_seconds": 2}},
        service_name="monitor-replicas-under-test",
        health={"redis_url": own_redis.redis_url},
        store_url=store_url,
    )
    process.config["ha"] = {"enabled": True, "replica_id": replica_id, "check_interval_seconds": 1}
    return process


def _replica_status(replica: MonitorProcess) -> dict:
    """What the replica's health report says of it (answered at 200 or 503 alike)."""
    return httpx.get(f"{replica.url}/api/v1/system/health", timeout=5).json()["replica"]


def _leaders(replicas: list[MonitorProcess]) -> list[str]:
    return [status["id"] for status in map(_replica_status, replicas) if status["leader"]]


def _one_leader(replicas: list[MonitorProcess]) -> str | None:
    leaders = _leaders(replicas)
    return leaders[0] if len(leaders) == 1 else None


def _hooks(receiver) -> list[dict]:
    return [r for r in receiver.requests if r["path"] == "/hook"]


def _sent(receiver, rule: str, status: str) -> list[dict]:
    return [r for r in _hooks(receiver) if (r["json"]["alert"]["rule"], r["json"]["status"]) == (rule, status)]


FIRING = [("RedisDown", "firing"), ("RedisStillDown", "firing")]


def _firing_on_status_page(replica: MonitorProcess) -> list[tuple[str, str]]:
    alerts = httpx.get(f"{replica.url}/api/v1/status", timeout=5).json()["alerts"]
    return sorted((alert["rule"], alert["state"]) for alert in alerts)


@pytest.mark.stack
def test_killed_leader_and_killed_lock_connection_hand_over_with_each_notification_once(
    stack, own_redis, receiver, postgres_url, workdir
):
    """Leader SIGKILLed while one P0 fires and one is pending, then the next leader's lock connection terminated:
    each time another replica leads within 15 s; each notification reaches the webhook once, none is missing."""
    replicas = [_replica(stack, own_redis, receiver, workdir, postgres_url, f"replica-{n}").start() for n in range(3)]
    by_id = {replica.config["ha"]["replica_id"]: replica for replica in replicas}
    try:
        first_leader = wait_until(lambda: _one_leader(replicas), FAILOVER_BOUND_SECONDS, what="one leader")
        wait_until(
            lambda: (
                httpx.get(f"{replicas[0].url}/api/v1/system/health", timeout=5).json()["checks"]["redis"]["status"]
                == "healthy"
            ),
            30,
            what="Redis healthy",
        )

        own_redis.stop()
        wait_until(lambda: _sent(receiver, "RedisDown", "firing"), 30, what="the first P0's webhook")
        assert not _sent(receiver, "RedisStillDown", "firing")  # still pending: about to fire
        killed = by_id.pop(first_leader)
        killed.process.kill()
        killed_at = time.monotonic()
        survivors = list(by_id.values())
        second_leader = wait_until(
            lambda: _one_leader(survivors), FAILOVER_BOUND_SECONDS, what="a new leader after the SIGKILL"
        )
        assert time.monotonic() - killed_at <= FAILOVER_BOUND_SECONDS
        assert second_leader != first_leader
        wait_until(lambda: _sent(receiver, "RedisStillDown", "firing"), 30, what="the second P0's webhook")
        for replica in survivors:  # every replica's status page shows what the leader fires
            wait_until(lambda replica=replica: _firing_on_status_page(replica) == FIRING, 10, what="both P0s shown")
        (follower,) = (replica for replica_id, replica in by_id.items() if replica_id != second_leader)
        acked = _sent(receiver, "RedisStillDown", "firing")[0]["json"]["alert"]["fingerprint"]
        ack = httpx.post(f"{follower.url}/api/v1/alerts/{acked}/ack", json={"by": "oncall"}, timeout=5)
        assert ack.status_code == 200, ack.text  # acknowledged through a replica that does not lead

        (lock_backend,) = lock_connection_backends(postgres_url, second_leader)
        terminate_backends(postgres_url, [lock_backend])
        terminated_at = time.monotonic()
        third_leader = wait_until(
            lambda: next((leader for leader in _leaders(survivors) if leader != second_leader), None),
            FAILOVER_BOUND_SECONDS,
            what="another replica leading after its lock connection was terminated",
        )
        assert time.monotonic() - terminated_at <= FAILOVER_BOUND_SECONDS
        # The old leader's fence failed at once (no evaluation or send of its can pass it); its loop reports the
        # loss at its next check, which may come after the new leader took the free lock.
        wait_until(
            lambda: _replica_status(by_id[second_leader])["leader"] is False,
            FAILOVER_BOUND_SECONDS,
            what="the old leader reporting it no longer leads",
        )
        assert _leaders(survivors) == [third_leader]

        own_redis.start()
        for rule in ("RedisDown", "RedisStillDown"):
            wait_until(lambda rule=rule: _sent(receiver, rule, "resolved"), 30, what=f"{rule} resolved")
        time.sleep(3)  # room for a duplicate to show up: passes run every second, retries within one
    finally:
        for replica in replicas:
            replica.stop()

    hooks = _hooks(receiver)
    keys = collections.Counter(r["headers"]["idempotency-key"] for r in hooks)
    assert [key for key, count in keys.items() if count > 1] == []
    sent = sorted((r["json"]["alert"]["rule"], r["json"]["status"]) for r in hooks)
    assert sent == [
        ("RedisDown", "firing"),
        ("RedisDown", "resolved"),
        ("RedisStillDown", "firing"),
        ("RedisStillDown", "resolved"),
    ]


@pytest.mark.stack
def test_fence_fails_at_once_when_the_lock_connection_is_terminated(postgres_url):
    """Two electors: one leads, the other not; the leader's backend terminated: its fence fails before its loop
    notices, its loss is reported, and the other leads within the bound."""

    async def scenario() -> list[str]:
        events: list[str] = []
        stop = asyncio.Event()
        electors = [AdvisoryLockLeadership(postgres_url, replica_id=name, check_interval_seconds=1) for name in "ab"]
        first, second = electors

        def follow(elector: AdvisoryLockLeadership):
            async def gained() -> None:
                events.append(f"{elector.replica_id} leads")

            async def lost() -> None:
                events.append(f"{elector.replica_id} lost")

            return elector.run(gained, lost, stop)

        tasks = [asyncio.create_task(follow(first))]
        await _until(lambda: first.is_leader)
        tasks.append(asyncio.create_task(follow(second)))
        await asyncio.sleep(2.5)  # two tries of the second elector
        assert (first.is_leader, second.is_leader) == (True, False)
        assert await first.still_leading()
        terminate_backends(postgres_url, [await asyncio.to_thread(first.backend_pid)])
        assert await first.still_leading() is False  # the fence, before the loop's next check
        await _until(lambda: second.is_leader)
        stop.set()
        await asyncio.gather(*tasks)
        for elector in electors:
            await elector.close()
        return events

    first_leads, *handover, second_stops = asyncio.run(scenario())
    # a's loop notices the loss and b takes the lock in the same second, in either order
    assert (first_leads, sorted(handover), second_stops) == ("a leads", ["a lost", "b leads"], "b lost")


async def _until(predicate, timeout: float = FAILOVER_BOUND_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "not within the failover bound"
        await asyncio.sleep(0.1)
