"""The agent endpoint over real HTTP on loopback: auth, routes, bad input, SSE, OTLP, stop."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentops_console.protocol.client import AgentClient, EndpointError
from agentops_console.protocol.models import (
    ApprovalDecision,
    BudgetUpdate,
    PolicyBundle,
    policy_sha256,
)
from agentops_console.runtime import Runtime, SessionKilled
from agentops_console.runtime.server import EndpointServer

TOKEN = "s3cret-token"
POLICY = (Path(__file__).parents[2] / "fixtures" / "policies" / "it-support.cedar").read_text()


@pytest.fixture
def rt() -> Iterator[Runtime]:
    runtime = Runtime(
        agent="it-support", version="1.4.0", tenant="acme", token=TOKEN, policy=POLICY
    )
    runtime.start(host="127.0.0.1", port=0)
    yield runtime
    runtime.stop()


@pytest.fixture
def url(rt: Runtime) -> str:
    assert rt.url is not None
    return rt.url


@pytest.fixture
def client(url: str) -> Iterator[AgentClient]:
    with AgentClient(url, TOKEN) as c:
        yield c


def _raw(
    url: str,
    method: str,
    path: str,
    token: str | None = TOKEN,
    headers: dict[str, str] | None = None,
    **kw: Any,
) -> httpx.Response:
    sent = {"Authorization": f"Bearer {token}"} if token else {}
    sent.update(headers or {})
    return httpx.request(method, url + path, headers=sent, timeout=5, **kw)


def test_health_is_public_and_everything_else_needs_the_token(url: str) -> None:
    health = _raw(url, "GET", "/v1/health", token=None)
    assert health.status_code == 200
    assert health.json()["protocol"] == "agentops/1"
    for path in ("/v1/agent", "/v1/sessions", "/v1/approvals", "/metrics"):
        assert _raw(url, "GET", path, token=None).status_code == 401
        assert _raw(url, "GET", path, token="nope").status_code == 403
        assert _raw(url, "GET", path).status_code == 200
    assert (
        _raw(
            url, "GET", "/v1/agent", headers={"Authorization": "Basic eA=="}, token=None
        ).status_code
        == 401
    )


def test_an_endpoint_never_serves_without_a_token() -> None:
    runtime = Runtime(agent="a", version="1")
    try:
        for host in ("127.0.0.1", "0.0.0.0"):
            with pytest.raises(ValueError, match="needs a token"):
                EndpointServer(runtime, host=host, port=0, token=None)
    finally:
        runtime.stop()


def test_agent_and_sessions_snapshot(rt: Runtime, client: AgentClient) -> None:
    with rt.session(workflow="password-reset", principal="user-1042") as s:
        s.llm_call(model="gpt-4o-mini", input_tokens=1200, output_tokens=300)
        with s.tool_call("kb_search", {"query": "locked account"}):
            pass
        info = client.agent()
        assert info.agent == "it-support" and info.version == "1.4.0" and info.tenant == "acme"
        assert info.last_event_seq >= 3
        (summary,) = client.sessions()
        assert summary.id == s.id and summary.status == "running"
        assert summary.loops == 1 and summary.tool_calls == 1 and summary.tokens_in == 1200
        detail = client.session(s.id)
        assert [span.kind for span in detail.spans] == ["llm", "tool"]
        assert detail.spans[1].arguments == {"query": "locked account"}
        assert detail.spans[1].policy is not None


def test_kill_is_idempotent_and_stops_the_next_call(rt: Runtime, client: AgentClient) -> None:
    with pytest.raises(SessionKilled), rt.session(workflow="password-reset", principal="u") as s:
        first = client.kill(s.id, operator="oncall", reason="runaway")
        again = client.kill(s.id, operator="oncall", reason="runaway")
        assert first.status == again.status == "killed"
        assert first.killed is not None and first.killed.operator == "oncall"
        with s.tool_call("kb_search", {"query": "x"}):
            pytest.fail("a killed session must not run its tool")


def test_disable_and_enable_workflow(rt: Runtime, client: AgentClient) -> None:
    state = client.disable("password-reset", operator="oncall", reason="export attempt")
    assert state.disabled and state.operator == "oncall"
    with pytest.raises(SessionKilled), rt.session(workflow="password-reset", principal="u"):
        pass
    assert client.enable("password-reset", operator="oncall").disabled is False
    with rt.session(workflow="password-reset", principal="u"):
        pass


def test_budgets_live_and_bad_budgets(url: str, client: AgentClient, rt: Runtime) -> None:
    state = client.set_budgets(BudgetUpdate(scope="workflow:billing", max_tool_calls=3))
    assert state.budgets.max_tool_calls == 3
    for body in (
        {"scope": "agent", "max_cost_usd_session": -1},
        {"scope": "agent", "max_tool_calls": 10**12},
        {"scope": "agent", "max_cost_usd_session": "lots"},
        {"scope": "galaxy"},
        {"scope": "agent", "surprise": 1},
    ):
        response = _raw(url, "PUT", "/v1/budgets", json=body)
        assert response.status_code == 400, body
        assert "\n" not in response.json()["error"]
    assert (
        _raw(
            url, "PUT", "/v1/budgets", json={"scope": "session:nope", "max_tool_calls": 1}
        ).status_code
        == 404
    )


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/v1/sessions/nope/kill", {"operator": "o"}, 404),
        ("GET", "/v1/sessions/nope", None, 404),
        ("POST", "/v1/approvals/nope", {"decision": "approve", "operator": "o"}, 404),
        ("POST", "/v1/sessions/x/kill", b"{not json", 400),
        ("POST", "/v1/sessions/x/kill", {"reason": "no operator"}, 400),
        ("POST", "/v1/approvals/x", {"decision": "maybe", "operator": "o"}, 400),
        ("GET", "/v1/nowhere", None, 404),
        ("DELETE", "/v1/sessions", None, 405),
    ],
)
def test_bad_requests_get_one_line_errors(
    url: str, method: str, path: str, body: object, status: int
) -> None:
    kwargs: dict[str, Any] = {}
    if isinstance(body, bytes):
        kwargs = {"content": body, "headers": {"Content-Type": "application/json"}}
    elif body is not None:
        kwargs = {"json": body}
    response = _raw(url, method, path, **kwargs)
    assert response.status_code == status
    error = response.json()
    assert error["status"] == status and error["error"] and "\n" not in error["error"]


def test_oversized_body_is_413_and_the_server_keeps_serving(url: str) -> None:
    response = _raw(
        url,
        "PUT",
        "/v1/policy",
        content=b"x" * (5 * 1024 * 1024),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert _raw(url, "GET", "/v1/health").status_code == 200


def test_policy_push_valid_and_invalid(client: AgentClient, url: str) -> None:
    state = client.push_policy(
        PolicyBundle(version="1.4.1", cedar=POLICY, sha256=policy_sha256(POLICY))
    )
    assert state.version == "1.4.1" and state.budgets.max_cost_usd_session == 2.0
    broken = "permit(principal, action, resource) when { 1.5 > 1 };"
    with pytest.raises(EndpointError) as err:
        client.push_policy(PolicyBundle(version="bad", cedar=broken, sha256=policy_sha256(broken)))
    assert err.value.status == 400
    assert client.agent().policy.version == "1.4.1"
    unlimited = POLICY.replace('@max_cost_usd_session("2.00")', '@max_cost_usd_session("nan")')
    with pytest.raises(EndpointError, match="finite") as err:
        client.push_policy(
            PolicyBundle(version="nan", cedar=unlimited, sha256=policy_sha256(unlimited))
        )
    assert err.value.status == 400 and client.agent().policy.version == "1.4.1"
    mismatched = {"version": "x", "cedar": POLICY, "sha256": "0" * 64}
    assert _raw(url, "PUT", "/v1/policy", json=mismatched).status_code == 400


def test_approval_checkpoint_answered_over_http(rt: Runtime, client: AgentClient) -> None:
    rt.register_tool  # noqa: B018 - the API exists
    outcome: list[str] = []

    def agent() -> None:
        with (
            rt.session(workflow="password-reset", principal="user-1042") as s,
            s.tool_call("reset_password", {"user": "user-1042"}),
        ):
            outcome.append("ran")

    from agentops_console.runtime import ToolSpec

    rt.register_tool(ToolSpec(name="reset_password", category="identity"))
    worker = threading.Thread(target=agent)
    worker.start()
    deadline = time.monotonic() + 5
    while not (pending := client.approvals()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pending and pending[0].tool == "reset_password"
    decided = client.decide(pending[0].id, ApprovalDecision(decision="approve", operator="lead"))
    assert decided.status == "approved"
    worker.join(5)
    assert outcome == ["ran"]
    with pytest.raises(EndpointError) as err:
        client.decide(pending[0].id, ApprovalDecision(decision="deny", operator="lead"))
    assert err.value.status == 409


def _sse_lines(
    url: str, last_event_id: int | None, stop_after: int, timeout: float = 5
) -> list[str]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    lines: list[str] = []
    with httpx.stream("GET", url + "/v1/events", headers=headers, timeout=timeout) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            lines.append(line)
            if sum(1 for ln in lines if ln.startswith("id: ")) >= stop_after:
                break
    return lines


def test_sse_resumes_with_last_event_id(rt: Runtime, url: str) -> None:
    with rt.session(workflow="w", principal="p") as s:
        s.llm_call(model="gpt-4o-mini", input_tokens=10, output_tokens=5)
    seq = rt.events.last_seq
    assert seq >= 3
    lines = _sse_lines(url, last_event_id=0, stop_after=seq + 1)
    ids = [int(ln[4:]) for ln in lines if ln.startswith("id: ")]
    assert ids == list(range(0, seq + 1))  # the preamble names the position it resumes from
    first_data = json.loads(next(ln[6:] for ln in lines if ln.startswith("data: ")))
    assert first_data["seq"] == 1 and first_data["type"] == "session_started"
    resumed = _sse_lines(url, last_event_id=seq - 1, stop_after=2)
    assert [int(ln[4:]) for ln in resumed if ln.startswith("id: ")] == [seq - 1, seq]


def test_sse_event_arrives_live_and_keepalives_flow(rt: Runtime) -> None:
    server = EndpointServer(rt, port=0, token=TOKEN, keepalive_s=0.1)
    try:
        got: list[str] = []

        def reader() -> None:
            with httpx.stream(
                "GET",
                server.url + "/v1/events",
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=5,
            ) as r:
                for line in r.iter_lines():
                    got.append(line)
                    if line.startswith("event: session_killed"):
                        return

        thread = threading.Thread(target=reader)
        thread.start()
        deadline = time.monotonic() + 5  # a keep-alive first, however slow the connect
        while ": keep-alive" not in got and time.monotonic() < deadline:
            time.sleep(0.02)
        with pytest.raises(SessionKilled), rt.session(workflow="w", principal="p") as s:
            rt.kill(s.id, "oncall", "test")
            s.llm_call(model="gpt-4o-mini", input_tokens=1, output_tokens=1)
        thread.join(5)
        assert ": keep-alive" in got
        assert "event: session_killed" in got
        assert got[0] == "retry: 1000" and got[1].startswith("id: ")  # keep-alives carry it
    finally:
        server.close()


def test_metrics_are_prometheus_text(rt: Runtime, url: str) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    with rt.session(workflow="w", principal="p") as s:
        s.llm_call(model="gpt-4o-mini", input_tokens=100, output_tokens=50)
        with s.tool_call("kb_search", {"q": "x"}):
            pass
    response = _raw(url, "GET", "/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    assert families["agentops_tool_calls"].samples[0].value == 1
    tokens = {s.labels["direction"]: s.value for s in families["agentops_tokens"].samples}
    assert tokens == {"input": 100, "output": 50}
    assert families["agentops_agent_info"].samples[0].labels["agent"] == "it-support"


def test_stock_otlp_exporter_feeds_sessions(rt: Runtime, url: str, client: AgentClient) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    exporter = OTLPSpanExporter(
        endpoint=url + "/v1/traces", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("agent")
    with tracer.start_as_current_span("invoke_agent helper") as root:
        root.set_attribute("gen_ai.operation.name", "invoke_agent")
        root.set_attribute("gen_ai.conversation.id", "conv-otlp")
        root.set_attribute("gen_ai.agent.name", "helper")
        with tracer.start_as_current_span("chat gpt-4o-mini") as chat:
            chat.set_attribute("gen_ai.operation.name", "chat")
            chat.set_attribute("gen_ai.conversation.id", "conv-otlp")
            chat.set_attribute("gen_ai.request.model", "gpt-4o-mini")
            chat.set_attribute("gen_ai.usage.input_tokens", 700)
            chat.set_attribute("gen_ai.usage.output_tokens", 70)
    provider.shutdown()
    sessions = {s.id: s for s in client.sessions()}
    assert "conv-otlp" in sessions
    assert sessions["conv-otlp"].tokens_in == 700 and sessions["conv-otlp"].source == "otel"


def test_garbage_on_traces_is_400_and_the_agent_keeps_working(rt: Runtime, url: str) -> None:
    with rt.session(workflow="w", principal="p") as s:
        for body, media in (
            (b"\x00\xffjunk", "application/x-protobuf"),
            (b"{oops", "application/json"),
        ):
            assert (
                _raw(
                    url, "POST", "/v1/traces", content=body, headers={"Content-Type": media}
                ).status_code
                == 400
            )
        with s.tool_call("kb_search", {"q": "still fine"}):
            pass
    assert _raw(url, "GET", "/v1/health").status_code == 200
    assert rt.stats.otlp_rejected_total >= 2


def test_stop_leaves_no_thread_or_socket() -> None:
    before = set(threading.enumerate())
    runtime = Runtime(agent="a", version="1", token=TOKEN)
    url = runtime.start(port=0)
    port = int(url.rsplit(":", 1)[1])
    stream_open = threading.Event()

    def follow() -> None:
        try:
            with httpx.stream(
                "GET", url + "/v1/events", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
            ) as r:
                stream_open.set()
                for _ in r.iter_lines():
                    pass
        except httpx.HTTPError:
            pass

    follower = threading.Thread(target=follow)
    follower.start()
    assert stream_open.wait(5)
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as keepalive:
        assert keepalive.get("/v1/agent").status_code == 200  # an idle keep-alive connection
        started = time.monotonic()
        runtime.stop()
        assert time.monotonic() - started < 3
    follower.join(5)
    assert not follower.is_alive()
    leftover = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert leftover == []
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0


def test_a_stopped_runtime_can_serve_again_on_the_same_port() -> None:
    runtime = Runtime(agent="a", version="1", token=TOKEN)
    url = runtime.start(port=0)
    port = int(url.rsplit(":", 1)[1])
    with runtime.session(workflow="w", principal="p"):
        pass
    runtime.stop()
    assert runtime.start(port=port) == url  # an endpoint restart keeps the sessions
    try:
        with AgentClient(url, TOKEN) as client:
            assert len(client.sessions()) == 1
        lines = _sse_lines(url, last_event_id=0, stop_after=2)
        assert sum(1 for ln in lines if ln.startswith("id: ")) == 2
    finally:
        runtime.stop()
