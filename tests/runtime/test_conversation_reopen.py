"""A conversation is one session: a later run under the id of an ended OTel session re-opens
it (or, killed, keeps it stopped) and ends it again, through the real SDK TracerProvider with
the runtime's processor and through real OTLP POSTs on loopback (issue 9)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Tracer

from agentops_console.protocol.models import SessionStatus
from agentops_console.runtime import Runtime, ToolSpec
from agentops_console.runtime.config import RuntimeConfig
from agentops_console.runtime.session import Session
from tests.conversation_turns import traced, turn

POLICY = (Path(__file__).parents[2] / "fixtures" / "policies" / "it-support.cedar").read_text()
TOKEN = "conversation-token"
DENIED = {"region": "eu-west-1", "tenant": "globex"}  # export_data: the policy forbids it


def new_runtime(**config: object) -> Runtime:
    return Runtime(
        "helper",
        "2.0",
        tenant="acme",
        token=TOKEN,
        policy=POLICY,
        config=RuntimeConfig(**config),  # type: ignore[arg-type]
        tools=[ToolSpec("kb_search", read_only=True), ToolSpec("export_data", category="export")],
    )


@pytest.fixture
def rt() -> Iterator[Runtime]:
    runtime = new_runtime()
    yield runtime
    runtime.stop()


@pytest.fixture
def tracer(rt: Runtime) -> Iterator[Tracer]:
    provider = TracerProvider()
    provider.add_span_processor(rt.span_processor())
    yield provider.get_tracer("agent-framework")
    provider.shutdown()


def run(
    tracer: Tracer,
    conversation: str,
    tool: str = "kb_search",
    args: Mapping[str, object] | None = None,
    kill: tuple[Runtime, str] | None = None,
) -> bool:
    """One run of the conversation; `kill` (runtime, operator) kills it before its tool."""

    def stop() -> None:
        assert kill is not None
        assert kill[0].kill(conversation, kill[1], "stop this conversation") is not None

    return turn(tracer, conversation, tool, args, before_tool=stop if kill else None)


def events_of(rt: Runtime, session_id: str) -> list[str]:
    """The session_started / session_ended events of one session, in order."""
    return [
        e.type
        for e in rt.events.after(0)
        if e.type in ("session_started", "session_ended")
        and e.session is not None
        and e.session.summary().id == session_id
    ]


def tools_of(rt: Runtime, session_id: str) -> list[tuple[str | None, str]]:
    detail = rt.session_detail(session_id)
    assert detail is not None
    return [(s.tool, s.outcome) for s in detail.spans if s.kind == "tool"]


# -- the span processor ------------------------------------------------------------------


def test_a_later_run_reopens_a_completed_conversation_and_ends_it_again(
    rt: Runtime, tracer: Tracer
) -> None:
    assert run(tracer, "c")
    first = rt.session_detail("c")
    assert first is not None and first.status == "completed" and first.outcome == "unknown"
    with tracer.start_as_current_span(
        "invoke_agent helper",
        attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.conversation.id": "c"},
    ):
        live = rt.session_detail("c")
        assert live is not None and live.status == "running" and live.ended_at is None
        assert [s.id for s in rt.active_sessions()] == ["c"]
    assert run(tracer, "c", tool="kb_search", args={"query": "again"})
    assert events_of(rt, "c") == ["session_started", "session_ended"] * 3
    detail = rt.session_detail("c")
    assert detail is not None and detail.status == "completed" and detail.ended_at is not None
    assert tools_of(rt, "c") == [("kb_search", "ok"), ("kb_search", "ok")]
    assert (detail.loops, detail.tokens_in) == (2, 200)  # both runs' chats, counted once
    assert rt.stats.sessions_total == 1 and rt.stats.sessions_active == 0


def test_a_kill_during_a_later_run_stops_the_conversation(rt: Runtime, tracer: Tracer) -> None:
    assert run(tracer, "c")
    assert not run(tracer, "c", kill=(rt, "ops"))  # the chat's next message: killed
    detail = rt.session_detail("c")
    assert detail is not None and detail.status == "killed"
    assert detail.killed is not None and detail.killed.operator == "ops"
    assert tools_of(rt, "c") == [("kb_search", "ok"), ("kb_search", "killed")]
    assert events_of(rt, "c") == ["session_started", "session_ended"] * 2


def test_a_killed_conversation_stays_stopped_and_its_refused_runs_are_recorded(
    rt: Runtime, tracer: Tracer
) -> None:
    assert not run(tracer, "c", kill=(rt, "ops"))
    with tracer.start_as_current_span(
        "invoke_agent helper",
        attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.conversation.id": "c"},
    ):
        live = rt.session_detail("c")  # held again, still killed: not run again
        assert live is not None and live.status == "killed" and live.ended_at is None
    assert not run(tracer, "c")  # the next turn: refused at the tool span's start
    assert not run(tracer, "c", tool="export_data", args=DENIED)
    assert tools_of(rt, "c") == [("kb_search", "killed")] * 2 + [("export_data", "killed")]
    # each run's end is published again, so the records get the refused attempts
    assert events_of(rt, "c") == ["session_started", "session_ended"] * 4
    detail = rt.session_detail("c")
    assert detail is not None and detail.status == "killed" and detail.outcome == "failed"
    assert rt.stats.sessions_killed_total == 1


def test_late_spans_of_the_same_trace_do_not_reopen(rt: Runtime, tracer: Tracer) -> None:
    """The trace's own root (an HTTP span around the run) ending after the agent span ended
    the session is the same run: it reports, it does not re-open."""
    with tracer.start_as_current_span("POST /chat") as root:
        assert run(tracer, "c")
        root.set_attribute("agentops.outcome", "resolved")
    detail = rt.session_detail("c")
    assert detail is not None and detail.status == "completed" and detail.outcome == "resolved"
    assert events_of(rt, "c") == ["session_started", "session_ended"]


def test_a_root_that_ends_after_its_session_was_swept_ends_it_again(
    rt: Runtime, tracer: Tracer
) -> None:
    """A long run's session ended by the idle sweep: its root's end re-opens and ends it, so
    the records get what came after the sweep."""
    with tracer.start_as_current_span(
        "invoke_agent helper",
        attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.conversation.id": "c"},
    ):
        assert rt.sweep_idle(-60) == 1
        with tracer.start_as_current_span(
            "execute_tool kb_search",
            attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "kb_search"},
        ):
            pass
    detail = rt.session_detail("c")
    assert detail is not None and detail.status == "completed"
    assert tools_of(rt, "c") == [("kb_search", "ok")]
    assert events_of(rt, "c") == ["session_started", "session_ended"] * 2


def test_a_conversation_the_runtime_no_longer_holds_starts_anew() -> None:
    small = new_runtime(finished_sessions=1)
    with traced(small) as tracer:
        assert run(tracer, "c")
        assert run(tracer, "other")  # evicts "c" from the finished ring
        assert small.get("c") is None
        assert run(tracer, "c")
        assert tools_of(small, "c") == [("kb_search", "ok")]  # only the new run
        assert small.stats.sessions_total == 3


def test_reopened_conversations_stay_under_the_live_cap() -> None:
    capped = new_runtime(otel_sessions_max=1)
    with traced(capped) as tracer:
        assert run(tracer, "a")
        with tracer.start_as_current_span(
            "chat gpt-4o-mini",
            attributes={"gen_ai.operation.name": "chat", "gen_ai.conversation.id": "b"},
        ):
            pass  # "b" has no root: it stays active
        with tracer.start_as_current_span(
            "chat gpt-4o-mini",
            attributes={"gen_ai.operation.name": "chat", "gen_ai.conversation.id": "a"},
        ):
            pass  # a later run of "a": re-opened, so "b" is evicted to make room
        assert [s.id for s in capped.active_sessions()] == ["a"]
        assert capped.stats.otel_sessions_evicted == 1


# -- OTLP ingest -------------------------------------------------------------------------


def otlp_tracer(url: str) -> tuple[TracerProvider, Tracer]:
    """The agent's own process exporting to the runtime's /v1/traces in batches (sent on
    `force_flush`: a run's spans in one POST, as a batch exporter sends them)."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    exporter = OTLPSpanExporter(
        endpoint=f"{url}/v1/traces", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=60_000))
    return provider, provider.get_tracer("agent-framework")


def test_over_otlp_a_later_run_reopens_and_flags_what_the_policy_refuses(rt: Runtime) -> None:
    provider, tracer = otlp_tracer(rt.start(port=0))
    try:
        assert run(tracer, "c")
        assert provider.force_flush()
        assert run(tracer, "c", tool="export_data", args=DENIED)  # ran: nothing stops it
        assert provider.force_flush()
    finally:
        provider.shutdown()
    detail = rt.session_detail("c")
    assert detail is not None and detail.status == "completed"
    assert tools_of(rt, "c") == [("kb_search", "ok"), ("export_data", "ok")]
    assert detail.spans[-1].policy is not None and detail.spans[-1].policy.decision == "deny"
    assert [f.kind for f in detail.flags] == ["policy_denied"]
    assert "ran without enforcement" in detail.flags[0].message
    assert events_of(rt, "c") == ["session_started", "session_ended"] * 2


def test_over_otlp_a_killed_conversation_stays_killed_and_records_the_later_run(
    rt: Runtime,
) -> None:
    provider, tracer = otlp_tracer(rt.start(port=0))
    try:
        with tracer.start_as_current_span(
            "invoke_agent helper",
            attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.conversation.id": "c"},
        ):
            with tracer.start_as_current_span(
                "chat gpt-4o-mini",
                attributes={"gen_ai.operation.name": "chat", "gen_ai.conversation.id": "c"},
            ):
                pass
            assert provider.force_flush()
            assert rt.kill("c", "ops", "stop") is not None  # the chat span made the session
        assert provider.force_flush()
        assert run(tracer, "c", tool="export_data", args=DENIED)  # unguarded: it ran
        assert provider.force_flush()
    finally:
        provider.shutdown()
    detail = rt.session_detail("c")
    assert detail is not None and detail.status == "killed"
    assert tools_of(rt, "c") == [("export_data", "ok")]
    assert "policy_denied" in [f.kind for f in detail.flags]
    assert events_of(rt, "c") == ["session_started", "session_ended"] * 2


def test_two_turns_of_a_langgraph_thread_are_one_session_ended_twice(
    rt: Runtime, tracer: Tracer
) -> None:
    """OpenInference (kinds set when spans end, the run's root a CHAIN): the thread's second
    turn re-opens the session its first turn ended, and its root ends it again."""
    from .test_openinference import langgraph_run

    thread = {"session.id": "thread-1", "user.id": "user-42"}
    langgraph_run(tracer, [("kb_search", '{"query": "locked out"}')], extra=thread)
    langgraph_run(tracer, [("kb_search", '{"query": "still locked"}')], extra=thread)
    detail = rt.session_detail("thread-1")
    assert detail is not None and detail.status == "completed"
    assert detail.workflow == "LangGraph"
    assert tools_of(rt, "thread-1") == [("kb_search", "ok")] * 2
    assert events_of(rt, "thread-1") == ["session_started", "session_ended"] * 2


def test_a_conversation_stopped_by_its_budget_stays_stopped() -> None:
    from agentops_console.protocol.models import BudgetUpdate
    from agentops_console.runtime import BudgetExceeded

    tight = new_runtime()
    tight.set_budgets(BudgetUpdate(max_output_tokens=5, operator="ops"))
    with traced(tight) as tracer:
        with pytest.raises(BudgetExceeded):  # the chat crossed the limit: the tool stops
            run(tracer, "c")
        with tracer.start_as_current_span(
            "invoke_agent helper",
            attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.conversation.id": "c"},
        ):
            live = tight.session_detail("c")
            assert live is not None and live.status == "stopped" and live.ended_at is None
        with pytest.raises(BudgetExceeded):
            run(tracer, "c")
        detail = tight.session_detail("c")
        assert detail is not None and detail.status == "stopped"
        assert tools_of(tight, "c") == [("kb_search", "budget_exceeded")] * 2
        assert events_of(tight, "c") == ["session_started", "session_ended"] * 3


def test_a_reopen_racing_an_end_keeps_the_outcome_that_end_decided(
    rt: Runtime, tracer: Tracer
) -> None:
    """A later run's first span (another thread) finds the session between its end setting
    `ended` and the runtime moving it to the finished ones: the re-open fails, and the
    outcome the end just decided stays the session's."""
    session_ended = rt._session_ended
    reopened: list[bool] = []

    def ended_with_a_reopen_in_between(session: Session) -> None:
        reopened.append(session.reopen())  # in the window: still active, already ended
        session_ended(session)

    rt._session_ended = ended_with_a_reopen_in_between  # type: ignore[method-assign]
    with tracer.start_as_current_span(
        "invoke_agent helper",
        attributes={
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.conversation.id": "c",
            "agentops.outcome": "resolved",
        },
    ):
        pass
    assert reopened == [False]
    detail = rt.session_detail("c")
    assert detail is not None and detail.status == "completed" and detail.outcome == "resolved"


def test_a_kill_between_runs_stops_the_next_run(rt: Runtime, tracer: Tracer) -> None:
    """Between a chat's messages its session has ended `completed`: a kill then must still
    stop the conversation (it used to answer "already stopped" and the next run ran)."""
    assert run(tracer, "c")
    summary = rt.kill("c", "ops", "stop this conversation")
    assert summary is not None and summary.status == "killed"
    assert not run(tracer, "c")  # the next message: refused at the tool span's start
    detail = rt.session_detail("c")
    assert detail is not None and detail.status == "killed" and detail.killed is not None
    assert tools_of(rt, "c") == [("kb_search", "ok"), ("kb_search", "killed")]
    assert rt.stats.sessions_killed_total == 1


def test_a_kill_outlives_the_finished_ring() -> None:
    """A killed conversation the runtime no longer holds starts its next run killed."""
    small = new_runtime(finished_sessions=1)
    with traced(small) as tracer:
        assert run(tracer, "c")
        assert small.kill("c", "ops") is not None
        assert run(tracer, "other")  # evicts "c" from the finished ring
        assert small.get("c") is None
        assert not run(tracer, "c")
        detail = small.session_detail("c")
        assert detail is not None and detail.status == "killed"
        assert detail.killed is not None and detail.killed.operator == "ops"
        assert small.stats.sessions_killed_total == 1  # the same kill, not a new one
        assert run(tracer, "other")  # other conversations are not touched


def test_a_finished_api_session_has_nothing_left_to_kill(rt: Runtime) -> None:
    with rt.session("wf", "p") as s:
        pass
    summary = rt.kill(s.id, "ops")
    assert summary is not None and summary.status == "completed"
    assert rt.stats.sessions_killed_total == 0


def test_a_kill_racing_a_reopen_leaves_the_run_killed(
    rt: Runtime, tracer: Tracer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kill that lands after `Session.reopen` read the ended session's status and before
    the runtime re-opened it: the run is killed (its calls are refused), so it must show
    `killed`, not `running` with a kill attached."""
    assert run(tracer, "c")
    reopened = rt._session_reopened
    seen: list[tuple[str, str | None]] = []

    def kill_then_reopen(session: Session, status: SessionStatus) -> bool:
        assert status == "running"  # read before the kill
        assert rt.kill("c", "ops", "race") is not None
        done = reopened(session, status)
        seen.append((session.status, session.outcome_value))
        return done

    monkeypatch.setattr(rt, "_session_reopened", kill_then_reopen)
    assert not run(tracer, "c")
    assert seen == [("killed", "unknown")]  # the kill kept the first run's outcome
    detail = rt.session_detail("c")
    assert detail is not None and detail.status == "killed"
    assert rt.stats.sessions_killed_total == 1
