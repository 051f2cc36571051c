"""Records built once per module from a real Runtime on loopback (start-up costs ~0.2 s)."""

from __future__ import annotations

import pytest

from agentops_console.protocol.records import SessionRecord

from .live import approved, denied, killed, live_runtime, ordinary


@pytest.fixture(scope="module")
def live_records() -> dict[str, SessionRecord]:
    """ordinary, denied, approved and killed sessions, as records fetched over HTTP."""
    with live_runtime() as live:
        ids = {
            "ordinary": ordinary(live, "s-ordinary"),
            "denied": denied(live, "s-denied"),
            "approved": approved(live, "s-approved"),
            "killed": killed(live, "s-killed"),
        }
        return {name: live.record(sid) for name, sid in ids.items()}
