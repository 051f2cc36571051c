"""The `file` sink the demo pages to: watch.toml parsing and real delivery to a file."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import pytest

from agentops_console.watch.config import parse_config
from agentops_console.watch.errors import WatchConfigError
from agentops_console.watch.sinks import Notice, Notifier


def _notice(incident: str, state: Literal["trigger", "resolve"] = "trigger") -> Notice:
    return Notice(
        state=state,
        incident_id=incident,
        agent="it-support",
        cause="runaway_loop",
        severity="critical",
        summary="kb_search retried 4 times",
        detected_at=datetime(2025, 3, 4, 3, 12, 9, tzinfo=UTC),
        session_id="s1",
    )


async def test_a_file_sink_appends_one_json_line_per_notice(tmp_path: Path) -> None:
    config = parse_config(
        '[[sink]]\nkind = "file"\nname = "local"\npath = "out/pages.jsonl"\n',
        str(tmp_path / "watch.toml"),
    )
    (sink,) = config.build_sinks({})
    assert sink.path == tmp_path / "out" / "pages.jsonl"  # relative to the watch.toml
    (tmp_path / "out").mkdir()
    async with Notifier([sink]) as notifier:
        notifier.publish(_notice("1"))
        notifier.publish(_notice("1", "resolve"))
        assert await notifier.drain(5)
        assert notifier.counters()["local"].sent == 2
    lines = (tmp_path / "out" / "pages.jsonl").read_text(encoding="utf-8").splitlines()
    pages = [json.loads(line) for line in lines]
    assert [(p["schema"], p["state"], p["dedup_key"]) for p in pages] == [
        ("agentops.notice/1", "trigger", "agentops-incident-1"),
        ("agentops.notice/1", "resolve", "agentops-incident-1"),
    ]


async def test_an_unwritable_page_file_is_counted_not_raised(tmp_path: Path) -> None:
    text = f'[[sink]]\nkind = "file"\npath = "{tmp_path}"\nmax_attempts = 2\n'
    (sink,) = parse_config(text, "watch.toml").build_sinks({})

    async def no_wait(_: float) -> None:
        return None

    async with Notifier([sink], sleep=no_wait) as notifier:
        notifier.publish(_notice("2"))
        assert await notifier.drain(5)
        counters = notifier.counters()["file-1"]
    assert (counters.sent, counters.failed, counters.retried) == (0, 1, 1)
    assert counters.last_error is not None and "cannot write" in counters.last_error


def test_a_file_sink_without_a_path_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(WatchConfigError, match=r"^watch.toml:1: sink 1: missing key 'path'$"):
        parse_config('[[sink]]\nkind = "file"\n', "watch.toml")
    with pytest.raises(WatchConfigError, match="unknown kind 'mail'; use webhook, slack"):
        parse_config('[[sink]]\nkind = "mail"\n', "watch.toml")
