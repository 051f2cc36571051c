"""What an agent (or a client) can get wrong must not break the guard or the endpoint:
non-JSON arguments on a checkpoint, a cancelled asyncio call, a stalled request body,
absurd numbers, calls on an ended session, an OTLP batch whose children end first."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from agentops_console.protocol.models import ApprovalDecision, BudgetUpdate
from agentops_console.runtime import (
    PolicyDenied,
    Runtime,
    RuntimeConfig,
    SessionEnded,
    SessionKilled,
    ToolSpec,
)
from agentops_console.runtime.genai_span import GenAISpan

POLICY = (Path(__file__).parents[2] / "fixtures" / "policies" / "it-support.cedar").read_text()
TOKEN = "hostile-test-token"
TOOLS = [ToolSpec("reset_password", category="identity"), ToolSpec("kb_search", read_only=True)]


@pytest.fixture
def rt() -> Iterator[Runtime]:
    runtime = Runtime(
        agent="it-support",
        version="1.4.0",
        tenant="acme",
        token=TOKEN,
        policy=POLICY,
        tools=TOOLS,
        config=RuntimeConfig(approval_timeout_s=5),
    )
    runtime.start(host="127.0.0.1", port=0)
    yield runtime
    runtime.stop()


def _get(rt: Runtime, path: str, **kw: object) -> httpx.Response:
    assert rt.url is not None
    headers = {"Authorization": f"Bearer {TOKEN}"}
    return httpx.get(rt.url + path, headers=headers, timeout=5, **kw)  # type: ignore[arg-type]


def _wait(check: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def _waiting_at_a_checkpoint(rt: Runtime, agent: Callable[[], None]) -> threading.Thread:
    """Run `agent` on its own thread until its tool call waits for a human."""
    worker = threading.Thread(target=agent)
    worker.start()
    _wait(rt.pending_approvals)
    return worker


def test_non_json_arguments_on_a_checkpoint_keep_the_endpoint_serving(rt: Runtime) -> None:
    done: list[str] = []

    def agent() -> None:
        with rt.session(workflow="password-reset", principal="u", session_id="bin") as s:
            try:
                with s.tool_call("reset_password", {"blob": b"\x00\xff", "at": datetime.now()}):
                    done.append("ran")
            except PolicyDenied:
                done.append("denied")

    worker = _waiting_at_a_checkpoint(rt, agent)
    listed = _get(rt, "/v1/approvals")
    assert listed.status_code == 200, listed.text
    [approval] = listed.json()
    assert approval["arguments"]["blob"] == repr(b"\x00\xff")  # shown as text, literally
    assert rt.url is not None
    with httpx.stream(
        "GET",
        rt.url + "/v1/events",
        headers={"Authorization": f"Bearer {TOKEN}", "Last-Event-ID": "0"},
        timeout=5,
    ) as stream:
        types: list[str] = []
        for line in stream.iter_lines():  # the stream replays from 0 past the bad record
            if line.startswith("event: "):
                types.append(line[7:])
            if "approval_requested" in types:
                break
    assert types[0] == "session_started" and types[-1] == "approval_requested"
    rt.decide_approval(approval["id"], ApprovalDecision(decision="deny", operator="lead"))
    worker.join(5)
    assert done == ["denied"]


def test_a_cancelled_async_checkpoint_leaves_kill_working(rt: Runtime) -> None:
    async def give_up() -> None:
        async with rt.session(workflow="w", principal="u", session_id="gone") as s:

            async def call() -> None:
                async with s.tool_call("reset_password", {"user": "u"}):
                    pytest.fail("ran")

            with pytest.raises(TimeoutError):
                await asyncio.wait_for(call(), 0.2)

    asyncio.run(give_up())  # its event loop is closed from here on
    assert rt.pending_approvals() == []  # the abandoned checkpoint did not stay pending
    outcome: list[str] = []

    def agent() -> None:
        with rt.session(workflow="w", principal="u", session_id="waits") as s:
            try:
                with s.tool_call("reset_password", {"user": "u"}):
                    outcome.append("ran")
            except SessionKilled:
                outcome.append("killed")

    worker = _waiting_at_a_checkpoint(rt, agent)
    started = time.monotonic()
    rt.kill("waits", "oncall", "stop")
    worker.join(5)
    assert outcome == ["killed"] and time.monotonic() - started < 1.0


def test_a_stalled_request_body_gets_408_and_nothing_on_stderr(
    capfd: pytest.CaptureFixture[str],
) -> None:
    from agentops_console.runtime.server import _Handler

    runtime = Runtime(agent="a", version="1", token=TOKEN)
    old, _Handler.timeout = _Handler.timeout, 0.3
    try:
        runtime.start(host="127.0.0.1", port=0)
        assert runtime.url is not None
        port = int(runtime.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(
                b"PUT /v1/budgets HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Bearer " % port
                + TOKEN.encode()
                + b"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
            )
            reply = sock.recv(4096).decode()
        assert reply.startswith("HTTP/1.0 408") or reply.startswith("HTTP/1.1 408"), reply
        assert _get(runtime, "/v1/agent").status_code == 200  # still serving
    finally:
        runtime.stop()
        _Handler.timeout = old
    assert capfd.readouterr().err == ""


def test_head_and_options_get_the_json_error_shape(rt: Runtime) -> None:
    assert rt.url is not None
    for method in ("HEAD", "OPTIONS"):
        reply = httpx.request(
            method, rt.url + "/v1/agent", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert reply.status_code == 405
        assert reply.headers["content-type"].startswith("application/json")


def test_absurd_values_from_the_agent_never_break_the_guard(rt: Runtime) -> None:
    deep: dict[str, object] = {}
    cursor = deep
    for _ in range(5000):
        cursor["a"] = {}
        cursor = cursor["a"]  # type: ignore[assignment]
    with rt.session(workflow="w", principal="u") as s:
        with s.tool_call("kb_search", deep):  # no RecursionError from the guard
            pass
        with s.tool_call("kb_search", {"q": 1}) as call, pytest.raises(ValueError, match="cost"):
            call.cost(float("nan"))
        with s.tool_call("kb_search", {"q": 2}) as call:  # and the session goes on
            call.cost(0.01)
        for bad in (float("nan"), float("inf"), -5, 10**12):
            with pytest.raises(ValueError, match="token count"):
                s.llm_call(model="gpt-4o-mini", input_tokens=bad, output_tokens=1)  # type: ignore[arg-type]
        assert s.cost_usd == pytest.approx(0.01)


def test_an_ended_session_refuses_further_calls(rt: Runtime) -> None:
    with rt.session(workflow="w", principal="u") as s:
        s.llm_call(model="gpt-4o-mini", input_tokens=10, output_tokens=10)
    cost = s.cost_usd
    with pytest.raises(SessionEnded):
        s.llm_call(model="gpt-4o", input_tokens=100_000, output_tokens=100_000)
    with pytest.raises(SessionEnded), s.tool_call("kb_search", {"q": "x"}):
        pytest.fail("ran")
    assert s.cost_usd == cost and s.tool_calls == 0


def test_tool_call_budget_warns_at_80_percent(rt: Runtime) -> None:
    rt.set_budgets(BudgetUpdate(scope="agent", max_tool_calls=5, operator="t"))
    with rt.session(workflow="w", principal="u") as s:
        for n in range(4):
            with s.tool_call("kb_search", {"q": n}):
                pass
        assert "budget_warning" in [f.kind for f in s.flags]


def test_disable_while_waiting_for_a_checkpoint_is_a_kill(rt: Runtime) -> None:
    outcome: list[str] = []

    def agent() -> None:
        with rt.session(workflow="password-reset", principal="u") as s:
            try:
                with s.tool_call("reset_password", {"user": "u"}):
                    outcome.append("ran")
            except SessionKilled:
                outcome.append("killed")
            except PolicyDenied:
                outcome.append("denied")

    worker = _waiting_at_a_checkpoint(rt, agent)
    rt.disable_workflow("password-reset", "oncall", "loop")
    worker.join(5)
    assert outcome == ["killed"]


def _span(span_id: str, parent: str | None, name: str, end: int, **attributes: object) -> GenAISpan:
    return GenAISpan(
        trace_id="ab" * 16,
        span_id=span_id * 16,
        parent_span_id=None if parent is None else parent * 16,
        name=name,
        start_ns=1_000,
        end_ns=end,
        attributes=dict(attributes),
        service_name="svc",
    )


def test_an_otlp_batch_whose_children_end_first_is_one_session(rt: Runtime) -> None:
    spans = [
        _span(
            "1",
            None,
            "invoke_agent helper",
            9_000,
            **{
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.conversation.id": "o1",
                "gen_ai.agent.name": "helper",
                "enduser.id": "user-7",
            },
        ),
        _span(
            "2",
            "1",
            "chat gpt-4o-mini",
            3_000,
            **{
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": 100,
                "gen_ai.usage.output_tokens": 1e300,  # garbage counts 0
            },
        ),
        _span(
            "3",
            "1",
            "execute_tool kb_search",
            5_000,
            **{"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "kb_search"},
        ),
    ]
    assert rt.ingest_spans(spans) == 3
    [summary] = rt.session_summaries()
    assert (summary.id, summary.workflow, summary.principal) == ("o1", "helper", "user-7")
    assert (summary.tokens_in, summary.tokens_out, summary.tool_calls) == (100, 0, 1)
    assert json.loads(summary.model_dump_json())["id"] == "o1"


def test_the_otel_sweep_never_ends_a_session_the_agent_opened(rt: Runtime) -> None:
    quiet = rt.session(workflow="w", principal="u", session_id="api")
    quiet.llm_call(model="gpt-4o-mini", input_tokens=1, output_tokens=1)
    stray = _span("9", None, "GET /health", 1_000, **{"gen_ai.conversation.id": "stray"})
    rt.ingest_spans([stray])  # not a GenAI span: no session for it
    assert rt.sweep_idle(0.0) == 0  # the API session is idle, but it is not the sweep's
    quiet.llm_call(model="gpt-4o-mini", input_tokens="12", output_tokens=1)  # type: ignore[arg-type]
    assert [s.id for s in rt.session_summaries()] == ["api"]
    assert quiet.tokens_in == 13


def test_keepalives_must_come_often_enough_for_consoles() -> None:
    runtime = Runtime(agent="a", version="1", token=TOKEN)
    with pytest.raises(ValueError, match="keepalive_s"):
        runtime.start(host="127.0.0.1", port=0, keepalive_s=30)
    assert runtime.url is None
