"""Issue 9: a later run of a conversation the agent no longer held (a new session object
under the same id) is merged into the stored record, never replacing the earlier runs; the
same run written again changes nothing, and a fuller copy of the last run redoes its merge.
Records of a real runtime on loopback (real SDK spans through its span processor), real
SQLite files."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Tracer

from agentops_console.protocol.client import AgentClient
from agentops_console.protocol.models import FLAGS_KEPT, Budgets
from agentops_console.protocol.records import SessionRecord, build_record
from agentops_console.records.store import (
    Filters,
    RecordsStore,
    merge_runs,
    open_store,
    rows_of_record,
)
from agentops_console.runtime import Runtime
from agentops_console.runtime.config import RuntimeConfig
from tests.conversation_turns import turn as conversation_turn

TOKEN = "store-merge-token"


def turn(
    tracer: Tracer,
    conversation: str,
    tool: str,
    early: list[SessionRecord] | None = None,
    live: tuple[Runtime, AgentClient] | None = None,
) -> None:
    """One run (a new trace). With `live`, the conversation is killed before the tool and
    its copy then is put in `early`."""

    def kill_and_read() -> None:
        assert live is not None and early is not None
        rt, client = live
        rt.kill(conversation, "ops", "stop")
        early.append(build_record(client.session(conversation), client.agent()))

    stop = kill_and_read if live is not None and early is not None else None
    conversation_turn(tracer, conversation, tool, agent="it-support", before_tool=stop)


@pytest.fixture(scope="module")
def runs() -> dict[str, SessionRecord]:
    """Four runs of conversation "c", each a new session object (the agent's finished ring
    holds one session, and another conversation evicts "c" between runs); the third run is
    killed before its tool, with a copy read at the kill (`3-early`)."""
    config = RuntimeConfig(budgets=Budgets(max_consecutive_tool_calls=1000), finished_sessions=1)
    rt = Runtime("it-support", "1.4.0", tenant="acme", token=TOKEN, config=config)
    url = rt.start(host="127.0.0.1", port=0)
    provider = TracerProvider()
    provider.add_span_processor(rt.span_processor())
    tracer = provider.get_tracer("agent-framework")
    out: dict[str, SessionRecord] = {}
    try:
        with AgentClient(url, TOKEN) as client:
            tools = ("kb_search", "reset_password", "export_data", "crm_update")
            for n, tool in enumerate(tools, 1):
                if n > 1:
                    turn(tracer, f"other-{n}", "kb_search")  # evicts "c"
                    assert rt.get("c") is None
                early: list[SessionRecord] = []
                turn(tracer, "c", tool, early, (rt, client) if n == 3 else None)
                out[str(n)] = build_record(client.session("c"), client.agent())
                if early:
                    out[f"{n}-early"] = early[0]
    finally:
        provider.shutdown()
        rt.stop()
    return out


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RecordsStore]:
    s = open_store(tmp_path / "records.db", writer=True, create=True)
    yield s
    s.close()


def span_rows(store: RecordsStore) -> list[tuple[int, str]]:
    with sqlite3.connect(store.path) as conn:
        return conn.execute("SELECT idx, span_id FROM spans ORDER BY idx").fetchall()


def test_a_later_run_of_an_evicted_conversation_is_merged_not_replaced(
    store: RecordsStore, runs: dict[str, SessionRecord]
) -> None:
    first, second = runs["1"], runs["2"]
    assert second.started_at > (first.ended_at or first.started_at)  # a new session object
    assert store.write([first]).inserted == 1
    result = store.write([second])
    assert (result.inserted, result.replaced, result.merged, result.kept) == (0, 0, 1, 0)
    got = store.get("c")
    assert [(s.kind, s.tool_name) for s in got.spans] == [
        ("llm", None),
        ("tool", "kb_search"),
        ("llm", None),
        ("tool", "reset_password"),
    ]
    assert [s.span_id for s in got.spans] == [s.span_id for s in first.spans + second.spans]
    assert [s.loop for s in got.spans] == [1, 1, 2, 2]  # loops go on past the first run's
    assert (got.tokens_in, got.tokens_out) == (200, 20)
    assert got.cost_usd == pytest.approx(first.cost_usd + second.cost_usd)
    assert got.counters.tool_calls == first.counters.tool_calls + second.counters.tool_calls
    assert got.counters.loops == 2
    assert (got.started_at, got.trace_id) == (first.started_at, first.trace_id)
    assert (got.ended_at, got.last_event_at) == (second.ended_at, second.last_event_at)
    assert (got.status, got.final_outcome) == (second.status, second.final_outcome)
    assert [i for i, _ in span_rows(store)] == [0, 1, 2, 3]


def test_the_same_runs_written_again_change_nothing(
    store: RecordsStore, runs: dict[str, SessionRecord]
) -> None:
    """A restarted watcher, or a kill -9 replay, writes what it wrote before again."""
    store.write([runs["1"]])
    store.write([runs["2"]])
    merged = store.get("c")
    for again in ([runs["2"]], [runs["1"]], [runs["1"], runs["2"]]):
        result = store.write(again)
        assert (result.inserted, result.replaced, result.merged) == (0, 0, 0), again
        assert store.get("c") == merged
    assert len(span_rows(store)) == 4


def test_a_fuller_copy_of_the_last_run_redoes_its_merge(
    store: RecordsStore, runs: dict[str, SessionRecord]
) -> None:
    """The watcher read the third run at its kill (final, one span) and again at its end:
    the fuller copy replaces that run's part, and the earlier runs stay."""
    early, third = runs["3-early"], runs["3"]
    assert early.status == third.status == "killed" and early.ended_at is None
    store.write([runs["1"]])
    store.write([runs["2"]])
    assert store.write([early]).merged == 1
    assert len(store.get("c").spans) == 5
    assert store.write([third]).merged == 1
    got = store.get("c")
    assert [(s.tool_name, s.outcome) for s in got.spans if s.kind == "tool"] == [
        ("kb_search", "ok"),
        ("reset_password", "ok"),
        ("export_data", "killed"),
    ]
    assert (got.tokens_in, got.tokens_out) == (300, 30)  # the early copy is not counted too
    assert (got.status, got.ended_at) == ("killed", third.ended_at)
    assert got.killed is not None and got.killed.operator == "ops"
    assert [i for i, _ in span_rows(store)] == list(range(6))
    for again in ([third], [early], [runs["2"]]):
        assert store.write(again).kept == 1
        assert store.get("c") == got


def test_runs_in_one_batch_merge_in_start_order_as_rows_or_records(
    tmp_path: Path, runs: dict[str, SessionRecord]
) -> None:
    with open_store(tmp_path / "one.db", writer=True, create=True) as one:
        for run in ("1", "2", "3-early", "3"):
            one.write([runs[run]])
        expected = one.get("c")
    with open_store(tmp_path / "batch.db", writer=True, create=True) as batch:
        copies = [runs["3"], runs["2"], runs["3-early"], runs["1"]]
        result = batch.write_batch(copies)
        assert (result.inserted, result.merged, result.kept) == (1, 2, 1)
        assert batch.get("c") == expected
    with open_store(tmp_path / "rows.db", writer=True, create=True) as rows:
        rows.write_batch([rows_of_record(runs[r]) for r in ("2", "1", "3")])
        assert rows.get("c") == expected


def test_a_later_run_merges_into_a_copy_read_at_a_kill(
    store: RecordsStore, runs: dict[str, SessionRecord]
) -> None:
    """A copy read at a kill is final but has no end yet: a run started after its last
    event is a later run all the same (the fuller copy of the killed run never came)."""
    early, fourth = runs["3-early"], runs["4"]
    assert early.ended_at is None and fourth.started_at > early.last_event_at
    store.write([early])
    assert store.write([fourth]).merged == 1
    got = store.get("c")
    assert [s.tool_name for s in got.spans if s.kind == "tool"] == ["crm_update"]
    assert len(got.spans) == len(early.spans) + len(fourth.spans) == 3
    assert (got.status, got.ended_at) == (fourth.status, fourth.ended_at)
    assert got.killed is not None and got.killed.operator == "ops"


def test_the_merge_marker_keeps_one_level_and_readers_never_see_it(
    store: RecordsStore, runs: dict[str, SessionRecord]
) -> None:
    """Each merge keeps only the row as it was before its last run (never an earlier
    marker inside it, so the marker does not grow with the runs), and every read path
    (`get`, `query`: `sessions show`, export, the console's records view) leaves it out."""
    for run in ("1", "2", "3-early", "3", "4"):
        store.write([runs[run]])
    with sqlite3.connect(store.path) as conn:
        (data,) = conn.execute("SELECT data FROM sessions").fetchone()
    assert data.count('"_merge"') == 1
    book = json.loads(data)["_merge"]
    assert datetime.fromisoformat(book["run_started_at"]) == runs["4"].started_at
    assert book["spans"] == 6 and "_merge" not in book["base"]
    for read in (store.get("c"), *store.query(Filters(), spans=True)):
        assert "_merge" not in read.model_dump_json()
    assert len(store.get("c").spans) == 8


def test_merged_flags_keep_the_newest_as_the_runtime_does() -> None:
    """Flags added up over many runs stay bounded: the newest FLAGS_KEPT, oldest first."""

    def flags(start: int, count: int) -> list[dict[str, object]]:
        return [
            {"kind": "policy_denied", "severity": "warning", "message": f"denial {n}"}
            for n in range(start, start + count)
        ]

    at = "2025-06-02T09:00:00.000000+00:00"
    first = {"last_event_at": at, "flags": flags(0, 40)}
    later = {"last_event_at": at, "flags": flags(40, 30)}
    merged = merge_runs(first, later)["flags"]
    assert len(merged) == FLAGS_KEPT == 50
    assert [f["message"] for f in merged] == [f"denial {n}" for n in range(20, 70)]
