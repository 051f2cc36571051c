"""Live sessions stay small (issue 12, target 5): a runtime may hold tens of thousands of them
(OpenTelemetry makes one per run), so a session is slotted, makes its containers on first
use, and keeps no summary of its own; and the runtime tidy-up (issue 13, item 20)."""

from __future__ import annotations

import ast
import gc
import tracemalloc
from pathlib import Path

from agentops_console.runtime import Runtime, RuntimeConfig
from agentops_console.runtime.session import Session

RUNTIME_SRC = Path(__file__).parents[2] / "src" / "agentops_console" / "runtime"
#: Issue 12's target for a live session with a couple of spans.
MAX_BYTES_PER_SESSION = 3 * 1024


def _session_with_two_spans(rt: Runtime, n: int) -> Session:
    session = rt.session(workflow="password-reset", principal="user-1042")
    session.llm_call("gpt-4o-mini", input_tokens=1200, output_tokens=300)
    with session.tool_call("kb_search", {"query": f"locked account {n}"}) as call:
        call.output = "reset link"
    return session


def _bytes_per_session(rt: Runtime, count: int) -> tuple[float, list[Session]]:
    _session_with_two_spans(rt, -1).summary()  # imports, price tables, first allocations
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        sessions = [_session_with_two_spans(rt, n) for n in range(count)]
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    return grown / count, sessions


def test_a_live_session_with_two_spans_takes_at_most_3_kb() -> None:
    """Everything the runtime keeps for 10,000 live sessions (spans, counters, retry table,
    loop costs, the event log's share), measured with tracemalloc."""
    rt = Runtime("helper", "1.0", config=RuntimeConfig())
    per_session, sessions = _bytes_per_session(rt, 10_000)
    assert len(sessions) == 10_000 and all(len(s.spans) == 2 for s in sessions)
    assert per_session <= MAX_BYTES_PER_SESSION, f"{per_session:.0f} bytes per session"


def test_summaries_are_kept_for_recent_sessions_only() -> None:
    """A snapshot of every session keeps at most SUMMARIES_KEPT summaries, not one per
    session forever; an unchanged session answers with the same object (streams render it
    once per batch), a changed one with a new one."""
    from agentops_console.runtime.session import SUMMARIES_KEPT

    rt = Runtime("helper", "1.0")
    sessions = [rt.session(workflow="w", principal=f"u{n}") for n in range(SUMMARIES_KEPT + 500)]
    summaries = rt.session_summaries()
    assert len(summaries) == SUMMARIES_KEPT + 500
    assert len(rt.summaries) == SUMMARIES_KEPT
    last = sessions[-1]
    first = last.summary()
    assert last.summary() is first
    last.llm_call("gpt-4o-mini", input_tokens=10, output_tokens=1)
    changed = last.summary()
    assert changed is not first and changed.loops == 1 and changed.tokens_in == 10
    assert sessions[0].summary().principal == "u0"  # evicted from the cache: built again


def test_a_session_has_no_instance_dict_and_makes_containers_on_first_use() -> None:
    rt = Runtime("helper", "1.0")
    session = rt.session(workflow="w", principal="u")
    assert not hasattr(session, "__dict__")
    assert session._flags is None and session._steps is None and session._loop_costs is None
    assert session._usage is None and list(session.flags) == [] and session.loop_costs == []
    other = rt.session(workflow="w", principal="v")
    assert session.limits() is other.limits()  # no limits of their own: one shared object


def test_loop_costs_are_records_per_loop() -> None:
    rt = Runtime("helper", "1.0")
    with rt.session(workflow="w", principal="u") as session:
        with session.tool_call("lookup", {"id": 1}):  # before any LLM call: loop 0
            pass
        session.llm_call("gpt-4o-mini", input_tokens=100, output_tokens=10)
        with session.tool_call("lookup", {"id": 2}):
            pass
        with session.tool_call("lookup", {"id": 3}) as call:
            call.cost(0.05)
        session.llm_call("gpt-4o-mini", input_tokens=200, output_tokens=20)
    detail = rt.session_detail(session.id)
    assert detail is not None and detail.loops == 2
    rows = [(c.loop, c.tokens_in, c.tokens_out, c.tool_calls) for c in detail.loop_costs]
    assert rows == [(0, 0, 0, 1), (1, 100, 10, 2), (2, 200, 20, 0)]
    assert detail.loop_costs[1].cost_usd > 0.05
    assert not hasattr(session, "loops")  # the same as `loop`: one counter


def test_tool_call_does_not_import_session_at_run_time() -> None:
    """`next_span_id` lives in spans.py: tool_call.py needs session.py for types only."""
    tree = ast.parse((RUNTIME_SRC / "tool_call.py").read_text())
    runtime_imports = [
        node.module
        for node in tree.body  # module level; TYPE_CHECKING blocks are `if` nodes
        if isinstance(node, ast.ImportFrom)
    ]
    assert "session" not in runtime_imports and "spans" in runtime_imports
