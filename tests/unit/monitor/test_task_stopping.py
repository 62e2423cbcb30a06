"""Stopping background tasks: a task that swallows its cancellation is cancelled again until it ends."""

from __future__ import annotations

import asyncio

import pytest

from otel_monitor.monitor.task_stopping import cancel_and_wait


async def _loop_forever() -> None:
    while True:
        await asyncio.sleep(0.01)


async def _swallows_first_cancels(times: int) -> None:
    """A service loop whose first ``times`` cancels are lost (as asyncio.wait_for can lose one on Python 3.11)."""
    lost = 0
    while True:
        try:
            await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            if lost == times:
                raise
            lost += 1


async def _fails() -> None:
    raise RuntimeError("ended badly")


@pytest.mark.parametrize(
    "make_task",
    [
        lambda: _loop_forever(),
        lambda: _swallows_first_cancels(1),
        lambda: _swallows_first_cancels(2),
        lambda: _fails(),
    ],
    ids=["cancellable", "one cancel lost", "two cancels lost", "already failed"],
)
def test_every_task_has_ended_when_cancel_and_wait_returns(make_task):
    """Whatever a task does with its cancellation, cancel_and_wait returns only once it has ended, and raises
    nothing of the task's own."""

    async def run() -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(make_task())
        await asyncio.sleep(0.05)
        await asyncio.wait_for(cancel_and_wait(task, None), 10)  # a bound, not a speed
        return task

    assert asyncio.run(run()).done()


def test_nothing_to_stop():
    """No tasks, None and finished tasks: returns at once."""
    asyncio.run(cancel_and_wait(None))
