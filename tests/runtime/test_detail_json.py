"""`detail_json(session)` gives exactly what `session.detail().model_dump_json(exclude_none=True)`
gives, for sessions of every kind a real runtime makes (explicit API, the reference Cedar
policy, approvals, kills, budgets, retention, OpenTelemetry), for hostile values and for
state the fast path must leave to the model; and the endpoint serves those bytes."""

from __future__ import annotations

import contextlib
import enum
import json
import math
import threading
import time
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
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
from agentops_console.runtime.spans import TOO_DEEP, PolicyNote, jsonable, safe_text
from agentops_console.runtime.sse import _split_wire

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
        ("loop.cost_usd", 3),
        ("loop.tool_calls", 2.0),
        ("split", math.nan),
        ("split", math.inf),
        ("span.cost_split", array("d", [0.5, math.nan, 0, 0, 0, 0])),
        ("span.cost_split", array("d", [1e308, 1e308, 0, 0, 0, 0])),
        ("span.cost_split", [1, 2, 3, 4, 5, 6]),
        ("span.cost_split", array("f", [0.1, 0.2, 0, 0, 0, 0])),
        ("span.cost_split", (0.1, 0.2)),
        ("span.attributes", {1: "non-str key"}),
        ("span.attributes", {"k": [1.5, None, math.nan], "d": {"x" * 300: True}}),
        ("span.latency_ms", 7),
        ("span.ended", "later"),
        ("span.confidence", math.inf),
        ("span.parent_id", 5),
        ("span.policy", PolicyNote("allow", ("r", 1))),  # type: ignore[arg-type]
        ("span.policy", PolicyNote("allow", ["r"], ["e"], "v1", "ap-1", 12)),  # type: ignore[arg-type]
        ("span.policy", PolicyNote("allow", "ab")),  # type: ignore[arg-type]
        ("span.policy", PolicyNote("maybe")),
        ("span.policy", PolicyNote("deny", (), (), None, None, math.nan)),
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
    elif field.startswith("loop."):
        setattr(s._loop_costs[-1], field[5:], value)  # type: ignore[index]
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


def _reference_jsonable(value: Any, depth: int = 0) -> Any:
    """spans.jsonable before its exact-type fast paths: the result they must keep."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if depth > 16:
        return TOO_DEEP
    if isinstance(value, dict):
        return {safe_text(k, 200): _reference_jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_reference_jsonable(v, depth + 1) for v in value]
    return safe_text(value)


def _same(a: Any, b: Any) -> bool:
    """Equal with exact types all the way down (True is not 1, a str subclass not a str)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(
            type(k) is type(j) and _same(a[k], b[j]) for k, j in zip(a, b, strict=True)
        )
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


class _Level(enum.IntEnum):
    LOW = 1


class _Name(enum.StrEnum):
    A = "a"


class _Tuple(tuple):  # type: ignore[type-arg]
    """A tuple subclass: the general path's, not the exact-type loop."""


_keys = st.one_of(
    st.text(max_size=8),
    st.text(min_size=195, max_size=205),  # about the 200-character cut
    st.integers(),
    st.booleans(),
    st.none(),
    st.floats(),
    st.tuples(st.integers(), st.text(max_size=3)),
    st.just(_Name.A),
    st.builds(_Text, st.text(min_size=198, max_size=202)),
)
_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 0.5]),  # often, not by luck
    st.text(max_size=10),
    st.just(_Level.LOW),
    st.just(_Name.A),
    st.builds(_Text, st.text(max_size=5)),
    st.binary(max_size=5),
    st.just(object),
)
_nested = st.recursive(
    _leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.lists(inner, max_size=4).map(_Tuple),
        st.frozensets(st.integers() | st.text(max_size=4), max_size=3),
        st.dictionaries(_keys, inner, max_size=4),
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(value=_nested)
@example({"nan": math.nan, "inf": [math.inf, (-math.inf,)], "t": True, "one": 1, "z": -0.0})
@example({"k" * 201: 1, _Text("s" * 201): 2, 3: 3, True: 4, None: 5, (1, "a"): 6, 1.5: 7})
@example([True, 1, _Level.LOW, _Name.A, _Text("x"), b"b", {1, 2}, frozenset(), _Tuple((1,))])
def test_jsonable_fast_paths_give_the_general_paths_result(value: Any) -> None:
    """The exact dict/list/tuple loops and the exact-type checks return what the general
    path returns: keys cut at 200 characters (a str subclass key made a str), bools kept
    apart from ints, subclasses and floats left to the general rules."""
    assert _same(jsonable(value), _reference_jsonable(value))


@pytest.mark.parametrize("depth", [15, 16, 17, 18, 30])
def test_jsonable_cuts_deep_values_where_the_general_path_does(depth: int) -> None:
    for leaf in ({"k": 1}, [1, 2], (1,), 1.5, "s", None, {1, 2}, b"x"):
        value: Any = leaf
        for n in range(depth):
            value = {f"k{n}": value} if n % 2 else [value]
        assert _same(jsonable(value), _reference_jsonable(value))


@settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(st.floats(), min_size=6, max_size=6),
    kind=st.sampled_from(["d", "list", "tuple"]),
)
def test_split_fast_path_rounds_as_the_loop_does(parts: list[float], kind: str) -> None:
    """An array of doubles is rounded in one C-level pass; the result equals the checked
    loop's (None for a part that is not finite, even when the sum overflows)."""
    fast = _split_wire(array("d", parts) if kind == "d" else list(parts))
    slow = _split_wire(tuple(parts))
    assert fast == slow
    if fast is not None:
        assert [type(v) for v in fast.values()] == [float] * 6
        assert json.dumps(fast) == json.dumps(slow)
