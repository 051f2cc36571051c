"""A stopped recorder stops: its flush loop must not swallow the cancellation that stops the
watcher (on Python 3.11 `asyncio.wait_for` returns the inner result instead of raising when
the cancellation lands just as the awaited wake-up completes; the watcher then never
exited on SIGTERM: seen once in bench_watch, a watcher still running minutes later)."""

from __future__ import annotations

import asyncio

from agentops_console.watch.recorder import Recorder, StoreThread


async def test_a_cancel_landing_as_the_flush_loop_wakes_stops_it() -> None:
    store = StoreThread()
    recorder = Recorder(store, flush_s=30)
    try:
        task = asyncio.create_task(recorder.run())
        await asyncio.sleep(0.05)  # the loop waits for a wake-up
        recorder._wake.set()
        await asyncio.sleep(0)  # the wake-up's waiter completes; the loop has not resumed
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=2)
        assert task in done and task.cancelled()
    finally:
        task.cancel()
        await store.close()
