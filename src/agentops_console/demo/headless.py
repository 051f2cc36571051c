"""A demo run without a screen: fleet, watcher, optional auto-responder, then the report.

Beside the demo's own event follower (`watch.Watcher`, which times detections) runs the
real `agentops watch` service (`companion.DemoWatch`): it records sessions, opens
incidents and pages to a file, with its records DB beside the governance DB.

The order of start and shutdown matters and lives here once. Start: endpoints, the
governance DB seeded (the service opens incidents in it), the service and the follower,
then traffic. Stop: the service first (it fetches the last sessions from the agents),
stop reconnecting (so the fleet's own shutdown is not reported as an outage), stop the
fleet (which ends every stream), then join the follower, close the responder's clients
and remove a temporary state directory.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .autorespond import AutoResponder
from .companion import DemoWatch, WatchPaths, WatchSummary
from .fleet import Fleet
from .report import Recorder, build_report
from .scenario import Scenario
from .watch import Watcher

#: How long traffic waits for the demo's `agentops watch` to follow every agent.
WATCH_READY_S = 5.0


@dataclass
class LiveDemo:
    """A running fleet and the clients that observe (and maybe answer) it."""

    fleet: Fleet
    watcher: Watcher
    recorder: Recorder
    responder: AutoResponder | None
    service: DemoWatch | None = None

    @property
    def records(self) -> Path | None:
        """The watcher's records DB (the console's history), None without a watcher."""
        return None if self.service is None else self.service.paths.records

    def report(self, ended_at: float | None = None) -> dict[str, Any]:
        """After the `live_demo` block: the watcher's part is read once it has stopped."""
        summary: WatchSummary | None = None
        if self.service is not None:
            summary = self.service.summary
        return build_report(
            self.fleet,
            self.recorder,
            list(self.responder.actions) if self.responder else [],
            ended_at=time.time() if ended_at is None else ended_at,
            auto_respond=self.responder is not None,
            watch=summary,
            watch_paths=None if self.service is None else self.service.paths,
        )


@contextmanager
def live_demo(
    scenario: Scenario,
    *,
    seed: int | None = None,
    speed: float = 1.0,
    until_s: float | None = None,
    auto_respond: bool = False,
    db: Path | None = None,
    seed_db: Callable[[Path, Fleet], Any] | None = None,
    state_dir: Path | None = None,
    watch: bool = True,
) -> Iterator[LiveDemo]:
    """Start everything, yield, and stop everything, whatever happens in between.

    `db` is the governance DB (`seed_db(db, fleet)` registers the fleet before traffic);
    without one the watcher's governance DB, records and pages go to `state_dir`, or to a
    temporary directory removed at the end."""
    recorder = Recorder(started_at=time.time())
    fleet = Fleet(scenario, seed=seed, speed=speed, until_s=until_s)
    watcher: Watcher | None = None
    responder: AutoResponder | None = None
    service: DemoWatch | None = None
    scratch: Path | None = None
    try:
        endpoints = fleet.start()
        if watch:
            if db is None and state_dir is None:
                scratch = Path(tempfile.mkdtemp(prefix="agentops-demo-watch-"))
            governance = db or (state_dir or scratch or Path()) / "governance.db"
            service = DemoWatch(endpoints, WatchPaths.beside(governance))
            service.start()  # it loads while the DB is seeded
        if db is not None and seed_db is not None:
            seed_db(db, fleet)
        if service is not None:
            service.governance_ready()
            service.ready.wait(WATCH_READY_S)  # else the first flags would open no incident
        responder = AutoResponder(scenario, endpoints) if auto_respond else None
        listeners = [recorder] + ([responder] if responder else [])
        watcher = Watcher(endpoints, listeners, [recorder.on_reach])
        watcher.start()
        fleet.run()
        yield LiveDemo(fleet, watcher, recorder, responder, service)
    finally:
        if service is not None:
            service.stop()
        if watcher is not None:
            watcher.halt()
        fleet.stop()
        if watcher is not None:
            watcher.stop()
        if responder is not None:
            responder.close()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


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
