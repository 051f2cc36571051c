"""A demo run without a screen: fleet, watcher, optional auto-responder, then the report.

The order of shutdown matters and lives here once: stop reconnecting first (so the
fleet's own shutdown is not reported as an outage), stop the fleet (which ends every
stream), then join the watcher and close the responder's clients.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .autorespond import AutoResponder
from .fleet import Fleet
from .report import Recorder, build_report
from .scenario import Scenario
from .watch import Watcher


@dataclass
class LiveDemo:
    """A running fleet and the clients that observe (and maybe answer) it."""

    fleet: Fleet
    watcher: Watcher
    recorder: Recorder
    responder: AutoResponder | None

    def report(self, ended_at: float | None = None) -> dict[str, Any]:
        return build_report(
            self.fleet,
            self.recorder,
            list(self.responder.actions) if self.responder else [],
            ended_at=time.time() if ended_at is None else ended_at,
            auto_respond=self.responder is not None,
        )


@contextmanager
def live_demo(
    scenario: Scenario,
    *,
    seed: int | None = None,
    speed: float = 1.0,
    until_s: float | None = None,
    auto_respond: bool = False,
) -> Iterator[LiveDemo]:
    """Start everything, yield, and stop everything, whatever happens in between."""
    recorder = Recorder(started_at=time.time())
    fleet = Fleet(scenario, seed=seed, speed=speed, until_s=until_s)
    watcher: Watcher | None = None
    responder: AutoResponder | None = None
    try:
        endpoints = fleet.start()
        responder = AutoResponder(scenario, endpoints) if auto_respond else None
        listeners = [recorder] + ([responder] if responder else [])
        watcher = Watcher(endpoints, listeners, [recorder.on_reach])
        watcher.start()
        fleet.run()
        yield LiveDemo(fleet, watcher, recorder, responder)
    finally:
        if watcher is not None:
            watcher.halt()
        fleet.stop()
        if watcher is not None:
            watcher.stop()
        if responder is not None:
            responder.close()


def run_headless(
    scenario: Scenario,
    *,
    seed: int | None = None,
    speed: float = 1.0,
    duration_s: float = 30.0,
    auto_respond: bool = False,
) -> dict[str, Any]:
    """Play `duration_s` wall seconds of the scenario and report what happened."""
    with live_demo(
        scenario, seed=seed, speed=speed, until_s=duration_s * speed, auto_respond=auto_respond
    ) as demo:
        demo.fleet.wait(duration_s)
        ended = time.time()
    return demo.report(ended_at=ended)
