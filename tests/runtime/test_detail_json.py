"""`detail_json(session)` gives exactly what `session.detail().model_dump_json(exclude_none=True)`
gives, for sessions of every kind a real runtime makes (explicit API, the reference Cedar
policy, approvals, kills, budgets, retention, OpenTelemetry), for hostile values and for
state the fast path must leave to the model; and the endpoint serves those bytes."""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Status, StatusCode

from agentops_console.protocol.models import ApprovalDecision, BudgetUpdate
from agentops_console.runtime import (
    BudgetExceeded,
    GuardError,
    PolicyDenied,
    Runtime,
    RuntimeConfig,
    SessionKilled,
    ToolSpec,
)
from agentops_console.runtime.retention import RedactContext
from agentops_console.runtime.session import Session
from agentops_console.runtime.session_json import _detail_bytes, detail_json

POLICY = (Path(__file__).parents[2] / "fixtures" / "policies" / "it-support.cedar").read_text()
TOKEN = "detail-json-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SECRET = "hunter2-SECRET"
TOOLS = [
    ToolSpec("kb_search", read_only=True, category="retrieval", corpus="it-kb"),
    ToolSpec("web_search", read_only=True, category="retrieval", corpus="dark-web"),
    ToolSpec("export_data", category="export", args={"region": "str"}),
    ToolSpec("reset_password", category="identity"),
    ToolSpec("update_ticket", customer_facing=True),
]
HOSTILE = [
    "",
    "\x00\x01\x1f\x7f control",
    'quote " backslash \\ slash / tab \t newline \n',
    "\u2028\u2029 separators",
    "non-BMP 😀 𝄞 \U0010ffff",
    "é" * 5000,
    "x" * 200_000,
]


def scrub(kind: str, value: Any, context: RedactContext) -> Any:
    return json.loads(json.dumps(value).replace(SECRET, "[secret]"))


def model_bytes(session: Session) -> bytes:
    return session.detail().model_dump_json(exclude_none=True).encode()


def assert_same(session: Session, fast: bool = True) -> None:
    """Equal JSON, and in fact equal bytes; `fast`: the hand-built path made them."""
    got = detail_json(session)
    expected = model_bytes(session)
    assert json.loads(got) == json.loads(expected)
    assert got == expected
    assert (_detail_bytes(session) is not None) is fast


@pytest.fixture
def rt() -> Iterator[Runtime]:
    runtime = Runtime(
        "it-support",
        "1.4.0",
        tenant="acme",
        token=TOKEN,
        policy=POLICY,
        tools=TOOLS,
        redact=scrub,
        config=RuntimeConfig(approval_timeout_s=0.3, finished_sessions=1000),
    )
    runtime.start(host="127.0.0.1", port=0)
    yield runtime
    runtime.stop()


def _decide_when_pending(rt: Runtime, session_id: str, decision: str) -> threading.Thread:
    def operator() -> None:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            for approval in rt.pending_approvals():
                if approval.session_id == session_id:
                    rt.decide_approval(
                        approval.id,
                        ApprovalDecision(decision=decision, operator="lead", reason="checked"),
                    )
                    return
            time.sleep(0.002)

    thread = threading.Thread(target=operator, daemon=True)
    thread.start()
    return thread


def _every_kind(rt: Runtime) -> list[Session]:
    made: list[Session] = []
    # LLM calls: cache and reasoning tokens (a cost split), an unpriced model, latency
    with rt.session("billing", "user-1", session_id="s-llm") as s:
        s.llm_call(
            "claude-sonnet-4-20250514",
            30_000,
            1_500,
            cache_read_tokens=20_000,
            cache_write_tokens=6_000,
            reasoning_tokens=500,
            provider="anthropic",
            latency_ms=812.5,
        )
        s.llm_call("gpt-4o", 12_000, 900, cache_read_tokens=8_000, provider="openai")
        s.llm_call("no-such-model-xyz", 10, 10)
        s.outcome("resolved", "answered from the KB")
        s.input(f"reset my password, it is {SECRET}")
        s.output("done")
    made.append(s)
    # tools allowed and denied by the reference policy (denied: retrieval from an unapproved
    # corpus, an export outside the approved regions, a customer-facing change)
    with rt.session("password-reset", "user-2", session_id="s-tools") as s:
        with s.tool_call("kb_search", {"query": SECRET, "n": 3, "x": [1.5, None, True]}) as c:
            c.output = {"hits": [{"id": 1, "score": 0.25}], "text": "ok"}
        for name, args in (
            ("web_search", {"query": "q"}),
            ("export_data", {"region": "mars-1"}),
            ("update_ticket", {"id": 7}),
        ):
            with pytest.raises(GuardError), s.tool_call(name, args):
                pass
    made.append(s)
    # approvals: one approved, one denied, one expired
    with rt.session("password-reset", "user-3", session_id="s-approved") as s:
        operator = _decide_when_pending(rt, "s-approved", "approve")
        with s.tool_call("reset_password", {"user": "alice"}) as c:
            c.output = "reset"
        operator.join(5)
    made.append(s)
    with pytest.raises(GuardError), rt.session("password-reset", "u", session_id="s-denied") as s:
        operator = _decide_when_pending(rt, "s-denied", "deny")
        with s.tool_call("reset_password", {"user": "bob"}):
            pass
    operator.join(5)
    made.append(s)
    with pytest.raises(GuardError), rt.session("password-reset", "u", session_id="s-expired") as s:
        with s.tool_call("reset_password", {"user": "carol"}):
            pass
    made.append(s)
    # killed by an operator
    with pytest.raises(SessionKilled), rt.session("triage", "u", session_id="s-killed") as s:
        s.llm_call("gpt-4o", 100, 10, provider="openai")
        rt.kill("s-killed", "oncall", "runaway")
        s.llm_call("gpt-4o", 100, 10, provider="openai")
    made.append(s)
    # stopped by a budget set live, with budgets of every kind on the session's scope
    with pytest.raises(BudgetExceeded), rt.session("triage", "u", session_id="s-budget") as s:
        rt.set_budgets(
            BudgetUpdate(
                scope="session:s-budget",
                operator="lead",
                max_cost_usd_session=0.0001,
                max_cost_usd_loop=0.5,
                max_tool_calls=40,
                max_consecutive_tool_calls=9,
                max_output_tokens=100_000,
            )
        )
        for _ in range(5):
            s.llm_call("gpt-4o", 1000, 100, provider="openai")
    made.append(s)
    # still running: no end time, no outcome yet, retries counted
    running = rt.session("triage", "user-4", session_id="s-running")
    for _ in range(3):
        with running.tool_call("kb_search", {"query": "same"}):
            pass
    made.append(running)
    return made


def test_every_kind_of_api_session_gives_the_models_bytes(rt: Runtime) -> None:
    sessions = _every_kind(rt)
    try:
        for session in sessions:
            assert_same(session)
        kinds = {(s.status, s.outcome_value) for s in sessions}
        assert ("killed", "failed") in kinds and ("stopped", "failed") in kinds
        assert any(s.usage_split.priced for s in sessions)
        assert all(s.flags for s in sessions if s.id in ("s-tools", "s-killed", "s-budget"))
        assert SECRET not in detail_json(rt.get("s-llm")).decode()  # type: ignore[arg-type]
    finally:
        sessions[-1].end()
    assert_same(sessions[-1])


def test_otel_sessions_from_the_span_processor_give_the_models_bytes(rt: Runtime) -> None:
    provider = TracerProvider()
    provider.add_span_processor(rt.span_processor())
    tracer = provider.get_tracer("agent-framework")
    agent = {"gen_ai.operation.name": "invoke_agent", "gen_ai.conversation.id": "conv-1"}
    with tracer.start_as_current_span("invoke_agent helper", attributes=agent):
        with tracer.start_as_current_span(
            "chat gpt-4o",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.provider.name": "openai",
                "gen_ai.usage.input_tokens": 1200,
                "gen_ai.usage.output_tokens": 80,
                "gen_ai.usage.cache_read.input_tokens": 1000,
            },
        ):
            pass
        for name, args in (("kb_search", {"query": "vpn"}), ("export_data", {"region": "x"})):
            with contextlib.suppress(PolicyDenied):  # the processor refuses it at its start
                with tracer.start_as_current_span(
                    f"execute_tool {name}",
                    attributes={
                        "gen_ai.operation.name": "execute_tool",
                        "gen_ai.tool.name": name,
                        "gen_ai.tool.call.arguments": json.dumps(args),
                    },
                ):
                    pass
        with tracer.start_as_current_span("db.query", attributes={"db.system": "sqlite"}) as sp:
            sp.set_status(Status(StatusCode.ERROR, "locked \x00 😀"))
    provider.shutdown()
    session = rt.get("conv-1")
    assert session is not None and session.source == "otel" and session.trace_id
    assert len(session.spans) >= 3
    assert_same(session)


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_strings_give_the_models_bytes(rt: Runtime, text: str) -> None:
    with rt.session(f"wf {text[:100]}", f"p {text[:100]}", session_id=f"s {text[:50]}") as s:
        s.input(text)
        with s.tool_call("kb_search", {text[:300]: text, "k": [text, {"n": text}]}) as c:
            c.output = text
        s.llm_call(text[:500] or "m", 5, 5, provider=text[:30] or None)
        s.outcome("partial", text)
        s.output(text)
    assert_same(s)


def test_a_lone_surrogate_fails_the_same_way_on_both_paths(rt: Runtime) -> None:
    """Text that cannot be UTF-8 makes the model path raise; the fast path does no better
    and no worse (the endpoint's answer for it is whatever the model path's is)."""
    with rt.session("triage", "u", session_id="s-surrogate") as s:
        s.output("lone \ud800 surrogate")
    errors: list[str] = []
    for render in (detail_json, model_bytes):
        try:
            render(s)
        except Exception as exc:
            errors.append(type(exc).__name__)
    assert len(errors) == 2 and errors[0] == errors[1], errors


class _Text(str):
    """A str subclass: pydantic writes it as a str; the fast path leaves it to the model."""


@pytest.mark.parametrize(
    "odd",
    [
        ("cost_usd", math.nan),
        ("cost_usd", math.inf),
        ("loop_cost_usd", -math.inf),
        ("tokens_in", True),
        ("tokens_out", 10**30),
        ("status", "weird"),
        ("outcome_value", "great"),
        ("principal", _Text("p")),
        ("tenant", 7),
        ("trace_id", b"bytes"),
        ("started", "yesterday"),
        ("span.latency_ms", math.nan),
        ("span.cost_usd", math.inf),
        ("span.tool", _Text("t")),
        ("loop.cost_usd", math.nan),
        ("split", math.nan),
    ],
    ids=lambda odd: f"{odd[0]}={odd[1]!r}"[:40],
)
def test_values_the_model_must_decide_take_the_model_path(
    rt: Runtime, odd: tuple[str, Any]
) -> None:
    """NaN or inf costs cannot come from the runtime's own arithmetic on sane input, but the
    fast path must not guess: whatever the model does with them (null, a coercion, an
    error), detail_json does the same."""
    with rt.session("triage", "u", session_id="s-odd") as s:
        s.llm_call("gpt-4o", 100, 10, provider="openai", latency_ms=5.0)
        with s.tool_call("kb_search", {"query": "q"}):
            pass
    field, value = odd
    if field.startswith("span."):
        setattr(s.spans[-1], field[5:], value)
    elif field == "loop.cost_usd":
        s._loop_costs[-1].cost_usd = value  # type: ignore[index]
    elif field == "split":
        s.usage_split.cost[2] = value
    else:
        setattr(s, field, value)
    try:
        expected: bytes | str = model_bytes(s)
    except Exception as exc:
        expected = type(exc).__name__
    try:
        got: bytes | str = detail_json(s)
    except Exception as exc:
        got = type(exc).__name__
    assert got == expected
    if isinstance(got, bytes):
        assert json.loads(got) == json.loads(expected)


def test_the_endpoint_serves_the_models_bytes(rt: Runtime) -> None:
    sessions = _every_kind(rt)
    sessions[-1].end()
    ids = [s.id for s in sessions]
    query = "&".join(f"id={i}" for i in [*ids, "s-unknown"])
    batch = httpx.get(f"{rt.url}/v1/session-details?{query}", headers=AUTH, timeout=5)
    assert batch.status_code == 200
    expected = b",".join(model_bytes(s) for s in sessions)
    assert batch.content.startswith(b'{"sessions":[' + expected + b'],"missing":["s-unknown"]')
    for session in sessions:
        one = httpx.get(f"{rt.url}/v1/sessions/{session.id}", headers=AUTH, timeout=5)
        assert one.status_code == 200 and one.content == model_bytes(session)


_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
_texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)
_ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("llm"),
            st.sampled_from(["gpt-4o", "claude-sonnet-4-20250514", "unknown-model"]),
            st.integers(0, 50_000),
            st.integers(0, 5_000),
            st.integers(0, 50_000),
            st.integers(0, 5_000),
            st.integers(0, 5_000),
        ),
        st.tuples(st.just("tool"), st.sampled_from(["kb_search", "web_search"]), _values, _values),
        st.tuples(st.just("text"), st.sampled_from(["input", "output"]), _texts),
        st.tuples(st.just("outcome"), st.sampled_from(["resolved", "refused"]), _texts),
        st.tuples(st.just("human")),
    ),
    max_size=12,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=_ops, end=st.booleans())
def test_randomly_built_sessions_give_the_models_bytes(
    rt: Runtime, ops: list[tuple[Any, ...]], end: bool
) -> None:
    s = rt.session("random", "user-r")
    for op in ops:
        try:
            if op[0] == "llm":
                _, model, i, o, cr, cw, r = op
                s.llm_call(
                    model,
                    i + cr + cw,
                    o + r,
                    cache_read_tokens=cr,
                    cache_write_tokens=cw,
                    reasoning_tokens=r,
                )
            elif op[0] == "tool":
                with s.tool_call(op[1], op[2]) as call:
                    call.output = op[3]
            elif op[0] == "text":
                getattr(s, op[1])(op[2])
            elif op[0] == "outcome":
                s.outcome(op[1], op[2])
            else:
                s.human_input()
        except GuardError:
            pass
    if end:
        s.end()
    assert_same(s)
    s.end()
