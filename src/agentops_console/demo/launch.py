"""The interactive demo: a live fleet, a seeded governance DB and the console on top.

The console gets the fleet's endpoints and tokens in process (the tokens never touch the
environment, a file or the screen), and the demo watcher's records DB as its history, so
sessions the agents have forgotten still open. Whatever way the console ends (q, Ctrl-C,
a crash), the fleet, its watchers and a temporary DB are cleaned up before returning.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .fleet import Endpoint
from .headless import LiveDemo, live_demo
from .scenario import Scenario


@contextlib.contextmanager
def demo_db(db: Path | None) -> Iterator[Path]:
    """The DB path to use: the one given, or one in a temporary directory removed after."""
    if db is not None:
        yield db
        return
    tmp = Path(tempfile.mkdtemp(prefix="agentops-demo-"))
    try:
        yield tmp / "governance.db"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def console_sources(endpoints: Sequence[Endpoint]) -> list[Any]:
    """The console's agent sources, carrying each token in memory only."""
    from ..console.connection import AgentSource

    return [AgentSource(e.agent, e.url, token=e.token) for e in endpoints]


def governance_for(db_path: Path) -> Any:
    """The console's governance port over the demo DB (every action lands in its audit)."""
    from ..console.governance_adapter import GovernanceAdapter

    return GovernanceAdapter(db_path)


def build_console(
    demo: LiveDemo,
    *,
    db_path: Path | None,
    operator: str,
    readonly: bool,
    **options: Any,
) -> Any:
    """The console app on the running fleet (audited into `db_path` unless read-only)."""
    from ..console.app import AgentOpsConsole  # binds Ctrl-C to quit, as the demo promises

    usable = db_path is not None and db_path.is_file() and not readonly
    if demo.records is not None and "records" not in options:
        from ..console.history import RecordsReader

        options["records"] = RecordsReader(demo.records)
    return AgentOpsConsole(
        console_sources(demo.fleet.endpoints()),
        governance=governance_for(db_path) if usable and db_path is not None else None,
        operator=operator,
        readonly=readonly,
        **options,
    )


def run_interactive(
    scenario: Scenario,
    *,
    seed: int | None,
    speed: float,
    db: Path | None,
    operator: str,
    readonly: bool,
    auto_respond: bool,
    seed_db: Any = None,
) -> None:
    """Fleet, DB, console; everything stopped and removed when the console closes."""
    with (
        demo_db(db) as db_path,
        live_demo(
            scenario,
            seed=seed,
            speed=speed,
            auto_respond=auto_respond,
            db=db_path,
            seed_db=seed_db,
        ) as demo,
    ):
        app = build_console(demo, db_path=db_path, operator=operator, readonly=readonly)
        app.run()
