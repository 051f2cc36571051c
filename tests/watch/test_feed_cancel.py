"""Stopping a feed must stop it: a cancellation that lands while the next event is ready
must not be swallowed (Python 3.11's wait_for did, and a stopped watcher streamed on)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from agentops_console.protocol.feed import _idle_limited
from agentops_console.protocol.models import Event


class _Ready:
    """A stream whose next item is always ready at once (a busy agent)."""

    def __aiter__(self) -> AsyncIterator[Event | None]:
        return self

    async def __anext__(self) -> Event | None:
        await asyncio.sleep(0)  # ready on the next turn of the loop
        return None  # a keep-alive


async def test_a_cancel_while_the_next_event_is_ready_stops_the_stream() -> None:
    read = 0
    give_up = False

    async def follow() -> None:
        nonlocal read
        async for _ in _idle_limited(_Ready(), 5.0):
            read += 1
            if give_up:  # only so a failing run ends: a working cancel never gets here
                return

    for turns in range(1, 8):  # land the cancel at each point of a read's life
        task = asyncio.create_task(follow())
        for _ in range(turns):
            await asyncio.sleep(0)
        task.cancel()
        await asyncio.wait({task}, timeout=2.0)
        swallowed = not task.done()
        if swallowed:
            give_up = True
            await task
        assert not swallowed, f"the cancel after {turns} turns was swallowed"
        assert task.cancelled()
    assert read > 0
