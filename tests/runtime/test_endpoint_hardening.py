"""The endpoint against a hostile browser, hostile peers and slow readers (issue 8, items 3,
4, 7, 8, 9, 10): always a token, Host and Origin checked, JSON only on control routes, a
read-only token, depth limits, strict types, caps on connections, JSON errors everywhere."""

from __future__ import annotations

import json
import socket
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentops_console.protocol.client import AgentClient, EndpointError
from agentops_console.runtime import Runtime, RuntimeConfig
from agentops_console.runtime.server import EndpointServer

TOKEN = "control-token"
READ = "read-only-token"


@pytest.fixture
def rt() -> Iterator[Runtime]:
    runtime = Runtime(agent="a", version="1", token=TOKEN, read_token=READ)
    runtime.start(host="127.0.0.1", port=0)
    yield runtime
    runtime.stop()


def _req(
    rt: Runtime,
    method: str,
    path: str,
    token: str | None = TOKEN,
    headers: dict[str, str] | None = None,
    **kw: Any,
) -> httpx.Response:
    assert rt.url is not None
    sent = {"Authorization": f"Bearer {token}"} if token is not None else {}
    sent.update(headers or {})
    return httpx.request(method, rt.url + path, headers=sent, timeout=5, **kw)


def _port(rt: Runtime) -> int:
    assert rt.url is not None
    return int(rt.url.rsplit(":", 1)[1])


def _raw(port: int, data: bytes, timeout: float = 5) -> bytes:
    """Send raw bytes, read until the server closes (or `timeout`)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (TimeoutError, ConnectionResetError):
            pass
    return b"".join(chunks)


def _json_of(reply: bytes) -> dict[str, Any]:
    body = reply.split(b"\r\n\r\n", 1)[1]
    parsed: dict[str, Any] = json.loads(body)
    return parsed


# -- item 3: no open endpoint ---------------------------------------------------------------
def test_without_a_token_one_is_generated_and_its_file_named_on_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    runtime = Runtime(agent="no token", version="1")
    url = runtime.start(host="127.0.0.1", port=0)
    try:
        err = capfd.readouterr().err
        assert err.count("\n") == 1 and "generated bearer token in " in err
        path = Path(err.split("generated bearer token in ", 1)[1].split(";", 1)[0])
        assert path.parent == tmp_path / "agentops"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert path.read_text().strip() == runtime.token and len(runtime.token) >= 32
        assert runtime.token not in err
        assert httpx.get(url + "/v1/agent", timeout=5).status_code == 401
        with AgentClient(url, path.read_text().strip()) as client:
            assert client.agent().agent == "no token"
    finally:
        runtime.stop()
    assert not path.exists()


def test_a_token_can_come_from_the_variable_the_config_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MY_AGENT_TOKEN", "from-env")
    monkeypatch.setenv("MY_AGENT_READ_TOKEN", "read-from-env")
    config = RuntimeConfig.from_dict(
        {"endpoint": {"token_env": "MY_AGENT_TOKEN", "read_token_env": "MY_AGENT_READ_TOKEN"}}
    )
    runtime = Runtime(agent="a", version="1", config=config)
    assert runtime.token == "from-env" and runtime.read_token == "read-from-env"
    assert not runtime.token_generated
    assert Runtime(agent="a", version="1", token="explicit", config=config).token == "explicit"


@pytest.mark.parametrize(
    "options",
    [
        {"token": ""},
        {"token": "   "},
        {"token": " padded "},
        {"token": "t", "read_token": ""},
        {"token": "same", "read_token": "same"},
    ],
)
def test_empty_blank_or_ambiguous_tokens_are_refused(options: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="token"):
        Runtime(agent="a", version="1", **options)


def test_an_empty_bearer_is_not_a_token(rt: Runtime) -> None:
    port = _port(rt)
    for header in (b"Bearer ", b"Bearer", b"bearer  ", b""):
        reply = _raw(
            port,
            b"GET /v1/agent HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: %s\r\n"
            b"Connection: close\r\n\r\n" % (port, header),
        )
        assert reply.startswith(b"HTTP/1.1 401"), header


def test_host_must_name_this_loopback_endpoint(rt: Runtime) -> None:
    port = _port(rt)
    with rt.session(workflow="w", principal="p") as s:
        for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1:{port + 1}", "127.0.0.1"):
            for method, path, body in (
                ("GET", "/v1/sessions", None),
                ("POST", f"/v1/sessions/{s.id}/kill", {"operator": "rebinding"}),
                ("PUT", "/v1/policy", {"version": "x", "cedar": "", "sha256": "0" * 64}),
            ):
                response = _req(rt, method, path, headers={"Host": host}, json=body)
                assert response.status_code == 403, (host, path)
                assert "is not this endpoint" in response.json()["error"]
        assert s.status == "running"
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
            assert _req(rt, "GET", "/v1/agent", headers={"Host": host}).status_code == 200


def test_a_browser_page_cannot_kill_or_approve(rt: Runtime) -> None:
    """The attack of the review: a cross-origin `text/plain` POST, with and without a token."""
    with rt.session(workflow="w", principal="p") as s:
        for token in (None, TOKEN):
            response = _req(
                rt,
                "POST",
                f"/v1/sessions/{s.id}/kill",
                token=token,
                headers={"Origin": "http://evil.example", "Content-Type": "text/plain"},
                content=b'{"operator": "page"}',
            )
            assert response.status_code in (401, 403)
        assert s.status == "running"


def test_a_browser_origin_needs_the_allow_list() -> None:
    config = RuntimeConfig(allowed_origins=("https://ops.example.com",))
    runtime = Runtime(agent="a", version="1", token=TOKEN, config=config)
    runtime.start(host="127.0.0.1", port=0)
    try:
        refused = _req(runtime, "GET", "/v1/agent", headers={"Origin": "https://evil.example"})
        assert refused.status_code == 403 and "Origin" in refused.json()["error"]
        assert _req(runtime, "GET", "/v1/agent", headers={"Origin": "null"}).status_code == 403
        allowed = {"Origin": "https://ops.example.com"}
        assert _req(runtime, "GET", "/v1/agent", headers=allowed).status_code == 200
    finally:
        runtime.stop()


CONTROL_JSON_ROUTES = [
    ("POST", "/v1/sessions/{sid}/kill", {"operator": "o"}),
    ("POST", "/v1/workflows/w/disable", {"operator": "o"}),
    ("POST", "/v1/workflows/w/enable", {"operator": "o"}),
    ("PUT", "/v1/budgets", {"scope": "agent", "max_tool_calls": 5}),
    ("POST", "/v1/approvals/nope", {"decision": "approve", "operator": "o"}),
    ("PUT", "/v1/policy", {"version": "x", "cedar": "", "sha256": "0" * 64}),
]


@pytest.mark.parametrize(("method", "path", "body"), CONTROL_JSON_ROUTES)
@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", None]
)
def test_control_routes_take_only_application_json(
    rt: Runtime, method: str, path: str, body: dict[str, Any], content_type: str | None
) -> None:
    with rt.session(workflow="w", principal="p") as s:
        headers = {} if content_type is None else {"Content-Type": content_type}
        response = _req(
            rt,
            method,
            path.format(sid=s.id),
            headers=headers,
            content=json.dumps(body).encode(),
        )
        assert response.status_code == 415, response.text
        assert response.json() == {"error": "Content-Type must be application/json", "status": 415}
        assert s.status == "running" and not rt.disabled


# -- item 4: a read-only token --------------------------------------------------------------
def test_the_read_token_reads_everything_and_controls_nothing(rt: Runtime) -> None:
    with rt.session(workflow="w", principal="p") as s:
        for path in (
            "/v1/agent",
            "/v1/sessions",
            f"/v1/sessions/{s.id}",
            "/v1/approvals",
            "/metrics",
        ):
            assert _req(rt, "GET", path, token=READ).status_code == 200, path
        with httpx.stream(
            "GET", f"{rt.url}/v1/events", headers={"Authorization": f"Bearer {READ}"}, timeout=5
        ) as stream:
            assert stream.status_code == 200
        for method, path, body in CONTROL_JSON_ROUTES:
            response = _req(rt, method, path.format(sid=s.id), token=READ, json=body)
            assert response.status_code == 403, path
            assert "needs the control token" in response.json()["error"]
        traces = _req(
            rt, "POST", "/v1/traces", token=READ, headers={"Content-Type": "application/json"}
        )
        assert traces.status_code == 403
        assert s.status == "running" and not rt.disabled
        with AgentClient(rt.url or "", READ) as reader, pytest.raises(EndpointError) as err:
            reader.kill(s.id, operator="watcher")
        assert err.value.status == 403
        with AgentClient(rt.url or "", TOKEN) as operator:
            assert operator.kill(s.id, operator="oncall").status == "killed"


# -- item 7: JSON depth ---------------------------------------------------------------------
@pytest.mark.parametrize("depth", [100, 1_000, 100_000])
def test_deeply_nested_json_is_a_400_on_every_json_route(rt: Runtime, depth: int) -> None:
    nested = b"[" * depth + b"]" * depth
    for method, path, _ in CONTROL_JSON_ROUTES:
        body = b'{"operator": "o", "reason": ' + nested + b"}"
        response = _req(
            rt, method, path, headers={"Content-Type": "application/json"}, content=body
        )
        assert response.status_code == 400, (path, response.text)
        assert "nested deeper than" in response.json()["error"]
    traces = _req(
        rt,
        "POST",
        "/v1/traces",
        headers={"Content-Type": "application/json"},
        content=b'{"resourceSpans": ' + nested + b"}",
    )
    assert traces.status_code == 400 and "nested deeper than" in traces.json()["error"]
    assert _req(rt, "GET", "/v1/health").status_code == 200


def test_brackets_inside_strings_do_not_count_as_depth(rt: Runtime) -> None:
    response = _req(
        rt, "POST", "/v1/workflows/w/disable", json={"operator": "o", "reason": "[{" * 900}
    )
    assert response.status_code == 200


# -- item 10: strict types ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/budgets", {"scope": "agent", "max_tool_calls": True}),
        ("/v1/budgets", {"scope": "agent", "max_tool_calls": "1"}),
        ("/v1/budgets", {"scope": "agent", "max_tool_calls": 1.0}),
        ("/v1/budgets", {"scope": "agent", "max_cost_usd_session": "2.0"}),
        ("/v1/budgets", {"scope": "agent", "max_cost_usd_session": False}),
        ("/v1/sessions/x/kill", {"operator": 7}),
        ("/v1/sessions/x/kill", {"operator": "o", "reason": ["a"]}),
        ("/v1/approvals/x", {"decision": True, "operator": "o"}),
    ],
)
def test_control_bodies_are_strictly_typed(rt: Runtime, path: str, body: object) -> None:
    method = "PUT" if path == "/v1/budgets" else "POST"
    response = _req(rt, method, path, json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error.startswith("invalid ") and "\n" not in error
    assert rt.budgets.agent_scope().max_tool_calls != 1


def test_a_float_budget_still_takes_a_whole_number(rt: Runtime) -> None:
    response = _req(rt, "PUT", "/v1/budgets", json={"scope": "agent", "max_cost_usd_session": 3})
    assert response.status_code == 200
    assert response.json()["budgets"]["max_cost_usd_session"] == 3.0


# -- item 9: JSON errors everywhere, no Python banner ---------------------------------------
def test_errors_of_the_http_layer_are_json_with_a_status_line(rt: Runtime) -> None:
    port = _port(rt)
    host = f"Host: 127.0.0.1:{port}\r\n".encode()
    cases = {
        414: b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n" + host + b"\r\n",
        431: b"GET /v1/health HTTP/1.1\r\n" + host + b"X: " + b"a" * 70_000 + b"\r\n\r\n",
        400: b"\x16\x03\x01\x02\x00garbage\r\n\r\n",
        501: b"BREW /v1/health HTTP/1.1\r\n" + host + b"\r\n",
    }
    for status, request in cases.items():
        reply = _raw(port, request)
        assert reply.startswith(b"HTTP/1."), (status, reply[:80])
        assert reply.split(b" ", 2)[1] == str(status).encode(), (status, reply[:80])
        assert b"Content-Type: application/json" in reply
        body = _json_of(reply)
        assert body["status"] == status and "\n" not in body["error"]


def test_conflicting_content_lengths_are_refused(rt: Runtime) -> None:
    port = _port(rt)
    body = b'{"operator": "o"}'
    request = (
        b"POST /v1/workflows/w/disable HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
        b"Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nContent-Length: 3\r\n\r\n%s"
    ) % (port, TOKEN.encode(), len(body), body)
    reply = _raw(port, request)
    assert reply.startswith(b"HTTP/1.1 400")
    assert _json_of(reply)["error"] == "conflicting Content-Length headers"
    assert not rt.disabled


def test_the_server_header_names_the_protocol_not_python(rt: Runtime) -> None:
    for response in (_req(rt, "GET", "/v1/health"), _req(rt, "GET", "/nowhere")):
        assert response.headers["server"] == "agentops/1"
    assert "Python" not in _raw(_port(rt), b"\x00\r\n\r\n").decode("latin-1")


# -- item 8: backlog, connection caps, slow headers -----------------------------------------
def test_over_the_unauthenticated_cap_a_503_in_json_and_the_operator_still_gets_in() -> None:
    runtime = Runtime(agent="a", version="1", token=TOKEN)
    server = EndpointServer(runtime, port=0, token=TOKEN, max_connections=6, max_unauthenticated=2)
    idle = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(2)]
    try:
        time.sleep(0.2)
        reply = _raw(server.port, b"GET /v1/health HTTP/1.1\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 503")
        assert _json_of(reply)["status"] == 503
        assert "without an authenticated request" in _json_of(reply)["error"]
        for sock in idle:
            sock.close()
        deadline = time.monotonic() + 5
        while (status := _health(server.port)) != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert status == 200
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as operator:
            assert operator.get("/v1/agent").status_code == 200  # authenticated: no longer
            extra = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(2)]
            time.sleep(0.2)  # counted against the unauthenticated cap
            assert operator.get("/v1/agent").status_code == 200
            for sock in extra:
                sock.close()
    finally:
        server.close()
        runtime.stop()


def _health(port: int) -> int:
    reply = _raw(port, b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port, 2)
    return int(reply.split(b" ", 2)[1]) if reply else 0


def test_slow_headers_are_cut_off_and_free_their_thread() -> None:
    runtime = Runtime(agent="a", version="1", token=TOKEN)
    server = EndpointServer(runtime, port=0, token=TOKEN, header_timeout_s=0.3)
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            started = time.monotonic()
            sock.sendall(b"GET /v1/agent HTTP/1.1\r\n")
            closed = False
            while time.monotonic() - started < 4:
                try:
                    sock.sendall(b"X-Slow: 1\r\n")  # a header line now and then, never the end
                    if sock.recv(1, socket.MSG_DONTWAIT) == b"":
                        closed = True
                        break
                except BlockingIOError:
                    pass
                except OSError:
                    closed = True
                    break
                time.sleep(0.1)
            assert closed and time.monotonic() - started < 2
        deadline = time.monotonic() + 3
        while server._connections and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not server._connections
    finally:
        server.close()
        runtime.stop()


def test_a_burst_of_connections_is_answered_at_once(rt: Runtime) -> None:
    """500 connections at once (the review's burst): every one gets an answer (200 or 503)
    quickly; with socketserver's backlog of 5 most waited for SYN retries."""
    port = _port(rt)
    statuses: list[int] = []
    lock = threading.Lock()

    def one() -> None:
        status = _health(port)
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=one) for _ in range(500)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert len(statuses) == 500
    assert set(statuses) <= {200, 503} and 200 in statuses
    assert time.monotonic() - started < 15


def test_every_accepted_socket_has_nagle_off(rt: Runtime) -> None:
    server = rt._server
    assert server is not None
    with httpx.stream(
        "GET", f"{rt.url}/v1/events", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
    ) as stream:
        assert stream.status_code == 200
        (sock,) = list(server._connections)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
