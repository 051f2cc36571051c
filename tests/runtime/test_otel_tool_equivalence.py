"""A tool call guarded by the span processor (an `execute_tool` span, no code change) is
the explicit guard's call: the same span record, events, flags and counters as `with
s.tool_call(...)` for the same call, whether it is allowed, denied by the policy, refused
in a killed session, or approved at a human checkpoint. Both run on twin runtimes (same
policy, tools and config) with the real OpenTelemetry SDK; only the ids and clocks differ.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Tracer

from agentops_console.protocol.models import ApprovalDecision
from agentops_console.runtime import GuardError, Runtime, RuntimeConfig, ToolSpec
from agentops_console.runtime.session import Session

POLICY = (Path(__file__).parents[2] / "fixtures" / "policies" / "it-support.cedar").read_text()
CONVERSATION = "conv-eq"
#: what differs by construction: ids, clocks, and the OTel ids only an OTel span has
_VOLATILE = {"id", "started_at", "ended_at", "latency_ms", "parent_id"}


def _runtime() -> Runtime:
    return Runtime(
        "helper",
        "2.0",
        tenant="acme",
        policy=POLICY,
        tools=[
            ToolSpec("reset_password", category="identity"),
            ToolSpec("export_data", category="export"),
        ],
        config=RuntimeConfig(approval_timeout_s=10),
    )


@pytest.fixture
def twins() -> Iterator[tuple[Runtime, Runtime, Tracer]]:
    explicit, otel = _runtime(), _runtime()
    provider = TracerProvider()
    provider.add_span_processor(otel.span_processor())
    yield explicit, otel, provider.get_tracer("agent-framework")
    provider.shutdown()
    explicit.stop()
    otel.stop()


def _approve_when_asked(rt: Runtime, decision: str) -> threading.Thread:
    """An operator answering the first checkpoint from another thread."""

    def answer() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pending = rt.approvals.pending()
            if pending:
                rt.decide_approval(
                    pending[0].id, ApprovalDecision(decision=decision, operator="lead")
                )
                return
            time.sleep(0.005)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    return thread


def _explicit(
    rt: Runtime, calls: list[tuple[str, dict[str, Any]]], before: Callable[..., Any]
) -> None:
    session = rt.session(workflow="helper", principal="u1", session_id=CONVERSATION)
    before(rt, session)
    for name, arguments in calls:
        try:
            with session.tool_call(name, arguments) as call:
                call.output = {"done": name}
        except GuardError:
            pass
    session.end("completed")


def _otel(
    rt: Runtime, tracer: Tracer, calls: list[tuple[str, dict[str, Any]]], before: Callable[..., Any]
) -> None:
    agent = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.conversation.id": CONVERSATION,
        "gen_ai.agent.name": "helper",
        "enduser.id": "u1",
    }
    with tracer.start_as_current_span("invoke_agent helper", attributes=agent):
        session = rt.get(CONVERSATION)
        assert session is not None
        before(rt, session)
        for name, arguments in calls:
            attributes = {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": name,
                "gen_ai.tool.call.arguments": json.dumps(arguments),
                "enduser.id": "u1",
            }
            try:
                with tracer.start_as_current_span(
                    f"execute_tool {name}", attributes=attributes
                ) as s:
                    s.set_attribute("gen_ai.tool.call.result", json.dumps({"done": name}))
            except GuardError:
                pass


def _record(rt: Runtime) -> dict[str, Any]:
    """The session's tool spans, flags, events and counters, without ids and clocks."""
    detail = rt.session_detail(CONVERSATION)
    assert detail is not None
    spans = []
    for span in detail.spans:
        row = span.model_dump(exclude=_VOLATILE)
        row["attributes"] = {
            k: v for k, v in row["attributes"].items() if not k.startswith("otel.")
        }
        if row["policy"] is not None:
            row["policy"].pop("evaluated_us", None)
            row["policy"].pop("approval_id", None)
        spans.append(row)
    events = [
        (e.type, sorted(e.fields), getattr(e.fields.get("span"), "name", None))
        for e in rt.events.after(0)
        if e.type not in ("session_started", "session_updated", "session_ended")
    ]
    return {
        "spans": spans,
        "flags": [(f.kind, f.severity, f.message) for f in detail.flags],
        "events": events,
        "tool_calls": detail.tool_calls,
        "unauthorized": detail.unauthorized_attempts,
        "decisions": dict(rt.stats.policy_decisions),
        "tool_calls_total": rt.stats.tool_calls_total,
    }


def _nothing(rt: Runtime, session: Session) -> None:
    return None


def _kill(rt: Runtime, session: Session) -> None:
    rt.kill(session.id, "ops", "runaway")


def _approve(rt: Runtime, session: Session) -> None:
    _approve_when_asked(rt, "approve")


def _reject(rt: Runtime, session: Session) -> None:
    _approve_when_asked(rt, "deny")


ALLOWED = [("kb_search", {"query": "vpn"}), ("kb_search", {"query": "vpn"})]
DENIED = [("export_data", {"region": "eu-west-1", "tenant": "globex"}), ("kb_search", {"q": 1})]
CHECKPOINT = [("reset_password", {"user": "bob"})]


@pytest.mark.parametrize(
    ("calls", "before"),
    [
        (ALLOWED, _nothing),
        (DENIED, _nothing),
        (ALLOWED, _kill),
        (CHECKPOINT, _approve),
        (CHECKPOINT, _reject),
    ],
    ids=["allowed", "denied-by-policy", "killed-session", "approved", "rejected"],
)
def test_otel_guarded_tool_call_is_the_explicit_one(
    twins: tuple[Runtime, Runtime, Tracer],
    calls: list[tuple[str, dict[str, Any]]],
    before: Callable[..., Any],
) -> None:
    explicit_rt, otel_rt, tracer = twins
    _explicit(explicit_rt, calls, before)
    _otel(otel_rt, tracer, calls, before)
    explicit, otel = _record(explicit_rt), _record(otel_rt)
    assert otel == explicit
    assert explicit["spans"], "the scenario recorded no tool span"


def test_otel_tool_span_keeps_its_otel_ids(twins: tuple[Runtime, Runtime, Tracer]) -> None:
    """What only the OTel path adds: the span's own ids, and its parent (the agent span)."""
    _, otel_rt, tracer = twins
    _otel(otel_rt, tracer, ALLOWED[:1], _nothing)
    detail = otel_rt.session_detail(CONVERSATION)
    assert detail is not None
    (span,) = detail.spans
    session = otel_rt.get(CONVERSATION)
    assert session is not None
    assert span.attributes["otel.trace_id"] == session.trace_id
    span_id = span.attributes["otel.span_id"]
    assert isinstance(span_id, str) and len(span_id) == 16
    assert span.parent_id is not None and len(span.parent_id) == 16
