"""Full garbage collections wait for an idle operator (console/gc_pacing.py): a key press
never lands in a 100-360 ms walk over 20,000 sessions' objects."""

from __future__ import annotations

import gc
from pathlib import Path

from agentops_console.console.gc_pacing import NEVER, GcPacer

from .agents import until
from .fleetview import build_app


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_full_collections_run_only_when_idle_and_not_too_often() -> None:
    clock, runs = Clock(), []

    def collect(generation: int) -> int:
        runs.append(generation)
        return gc.collect(generation)

    saved = gc.get_threshold()
    pacer = GcPacer(idle_s=2, min_every_s=30, max_every_s=300, clock=clock, collect=collect)
    assert not pacer.tick()  # not started: CPython's own schedule
    pacer.start()
    try:
        assert gc.get_threshold() == (saved[0], saved[1], NEVER)
        clock.now += 10
        assert not pacer.tick()  # idle, but the last full collection is too recent
        clock.now += 25
        pacer.input_seen()
        clock.now += 1
        assert not pacer.tick()  # a key a second ago: the operator is busy
        clock.now += 2
        assert pacer.tick() and runs == [2]  # idle for 2 s, 38 s since the last one
        for _ in range(300):  # a key every second for five minutes: never idle
            clock.now += 1
            pacer.input_seen()
            pacer.tick()
        assert runs == [2, 2]  # ...but memory is bounded: once at max_every_s
    finally:
        pacer.stop()
    assert gc.get_threshold() == saved and not pacer.active


async def test_the_console_paces_full_collections_while_it_runs(tmp_path: Path) -> None:
    saved = gc.get_threshold()
    app = build_app(tmp_path)
    async with app.run_test(size=(120, 30)) as pilot:
        await until(lambda: app.gc_pacer is not None and app.gc_pacer.active, what="pacing")
        assert gc.get_threshold()[2] == NEVER  # no automatic full collection
        assert app.gc_pacer is not None
        before = app.gc_pacer._last_input
        await pilot.press("2")
        assert app.gc_pacer._last_input > before  # keys count as the operator being busy
    assert gc.get_threshold() == saved  # put back when the console ends
