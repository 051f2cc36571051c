"""A kill over HTTP holds while the agent is busy (issue 8 item 12): the functional part.
Latency under load is measured by bench/bench_kill_under_load.py, not asserted here."""

from __future__ import annotations

import threading

import pytest

from agentops_console.protocol.client import AgentClient
from agentops_console.protocol.models import Budgets
from agentops_console.runtime import Runtime, RuntimeConfig, SessionKilled

TOKEN = "kill-load-token"


def test_a_kill_under_load_is_refused_at_the_next_call() -> None:
    rt = Runtime("a", "1", token=TOKEN, config=RuntimeConfig(budgets=Budgets()))
    url = rt.start()
    stop = threading.Event()

    def busy() -> None:
        while not stop.is_set():
            with rt.session(workflow="load", principal="u") as s:
                for i in range(100):
                    with s.tool_call("work", {"i": i % 3}):
                        pass
                    s.steps.clear()

    loaders = [threading.Thread(target=busy) for _ in range(20)]
    for thread in loaders:
        thread.start()
    try:
        victim = rt.session(workflow="w", principal="u")
        with victim.tool_call("work", {"i": 0}):
            pass
        with AgentClient(url, TOKEN) as client:
            assert client.kill(victim.id, operator="oncall").status == "killed"
        with pytest.raises(SessionKilled), victim.tool_call("work", {"i": 1}):
            pytest.fail("a killed session ran its tool")
        assert all(t.is_alive() for t in loaders)  # the load carried on meanwhile
    finally:
        stop.set()
        for thread in loaders:
            thread.join(10)
        rt.stop()
