"""`agentops status` stays bounded however many sessions an agent holds (issue 8 item 13):
counts and the first page of running sessions, one total timeout per agent."""

from __future__ import annotations

import asyncio
import io
import socket
import time

from rich.console import Console

from agentops_console.console.connection import AgentSource
from agentops_console.console.status_report import gather, render
from agentops_console.runtime import Runtime

TOKEN = "status-token"


def test_status_lists_the_first_page_and_counts_the_rest() -> None:
    rt = Runtime("busy", "1", token=TOKEN)
    url = rt.start()
    try:
        for n in range(30):
            rt.session(workflow="w", principal=f"u{n}")
        with rt.session(workflow="w", principal="done"):
            pass
        (report,) = asyncio.run(gather([AgentSource("busy", url, token=TOKEN)], shown=20))
        assert report.error is None and report.info is not None
        assert len(report.sessions) == 20 and report.more_sessions
        assert all(s.status == "running" for s in report.sessions)
        assert report.as_dict()["sessions_truncated"] is True
        out = io.StringIO()
        render([report], Console(file=out, width=200, highlight=False))
        text = out.getvalue()
        assert "30 running / 31" in text
        assert "showing the first 20 of 30 running sessions" in text
    finally:
        rt.stop()


def test_an_agent_that_does_not_answer_in_time_is_one_clear_line() -> None:
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        (report,) = asyncio.run(gather([AgentSource("mute", url, token=TOKEN)], timeout_s=0.5))
        assert time.monotonic() - started < 3
    assert report.error is not None and "\n" not in report.error
    assert "too slow: no full answer within 0.5s" in report.error
