"""The watcher follows its agents with a filter (watch/service.py WATCH_EVENTS): the agent
never renders the span events, and a denial is still judged on the denied call's
arguments, now read from the session's detail instead of remembered from span events."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentops_console.runtime import PolicyDenied

from .test_denial_fetch import billing
from .test_watcher_process import (
    Setup,
    incidents,
    recorded,
    url_of,
    wait_for,
    wait_live,
    watch_setup,
)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    with watch_setup(tmp_path) as made:
        yield made


def test_a_denial_is_judged_on_the_arguments_and_spans_are_not_rendered(setup: Setup) -> None:
    rt = billing()
    rt.start(host="127.0.0.1", port=0)
    try:
        watcher = setup.start(url_of(rt))
        wait_live(watcher)
        with rt.session("data-export", "user-9") as s:
            with s.tool_call("lookup", {"q": 1}):
                pass
            with pytest.raises(PolicyDenied), s.tool_call("export_data", {"tenant": "globex"}):
                pass
        wait_for(lambda: incidents(setup.gov), what="an incident")
        wait_for(lambda: len(recorded(setup.records)) == 1, what="the session recorded")
        time.sleep(0.3)
        assert watcher.stop() == 0, watcher.log()
        records = rt.events.after(0)
    finally:
        rt.stop()
    (row,) = incidents(setup.gov)
    assert row["flag_kind"] == "cross_tenant_export"
    assert row["summary"] == (
        "cross-tenant export attempt: export_data denied by policy: no-foreign-export"
    )
    spans = [r for r in records if r.type in ("span_started", "span_ended")]
    assert spans and all(r.sse is None for r in spans)  # the watcher's stream skipped them
