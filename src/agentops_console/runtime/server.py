"""The agent endpoint (protocol agentops/1): telemetry reads, control writes, SSE, OTLP in.

It runs inside the agent process, so it is built on the standard library's threading HTTP
server: no web framework, no event loop of its own, nothing that could clash with the
agent's own asyncio loop or threads. Each connection gets a daemon thread; `close()`
shuts every open connection and joins the threads so nothing is left behind.

Every failure is answered as `{"error": "<one line>", "status": N}`; no request, however
malformed, can raise into the agent's own threads.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import json
import re
import socket
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import BaseModel, TypeAdapter, ValidationError

from ..protocol.models import (
    MAX_BODY_BYTES,
    PROTOCOL_VERSION,
    Approval,
    ApprovalDecision,
    BudgetUpdate,
    ControlRequest,
    ErrorBody,
    Health,
    PolicyBundle,
    SessionSummary,
)
from .errors import PolicyError

if TYPE_CHECKING:
    from .core import Runtime

_SUMMARIES = TypeAdapter(list[SessionSummary])
_APPROVALS = TypeAdapter(list[Approval])

#: How often an idle SSE stream gets a keep-alive comment: a console tells a quiet agent
#: from a hung one by these, so the interval bounds how fast a hang is noticed.
DEFAULT_KEEPALIVE_S = 5.0
#: Consoles probe a stream silent for 20 s: keep-alives must come more often than that.
MAX_KEEPALIVE_S = 15.0
#: How often an SSE thread wakes to notice that the server is closing.
_POLL_S = 0.25


class HTTPError(Exception):
    """Raised inside a handler to answer with `status` and a one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _validation_message(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "body"
    return f"invalid {where}: {first.get('msg', 'invalid value')}"


Route = tuple[str, re.Pattern[str], str]

# (method, path pattern, handler method name); path parameters are URL-decoded.
ROUTES: tuple[Route, ...] = tuple(
    (method, re.compile(f"^{pattern}$"), name)
    for method, pattern, name in (
        ("GET", r"/v1/health", "get_health"),
        ("GET", r"/v1/agent", "get_agent"),
        ("GET", r"/v1/sessions", "get_sessions"),
        ("GET", r"/v1/sessions/(?P<id>[^/]+)", "get_session"),
        ("GET", r"/v1/events", "get_events"),
        ("POST", r"/v1/sessions/(?P<id>[^/]+)/kill", "post_kill"),
        ("POST", r"/v1/workflows/(?P<name>[^/]+)/disable", "post_disable"),
        ("POST", r"/v1/workflows/(?P<name>[^/]+)/enable", "post_enable"),
        ("PUT", r"/v1/budgets", "put_budgets"),
        ("GET", r"/v1/approvals", "get_approvals"),
        ("POST", r"/v1/approvals/(?P<id>[^/]+)", "post_approval"),
        ("PUT", r"/v1/policy", "put_policy"),
        ("POST", r"/v1/traces", "post_traces"),
        ("GET", r"/metrics", "get_metrics"),
    )
)
PUBLIC_ROUTES = frozenset({"get_health"})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # EndpointServer.close joins its own, after closing their sockets
    endpoint: EndpointServer

    def process_request(self, request: Any, client_address: Any) -> None:
        """One thread per connection, as ThreadingMixIn does, but remembered from before it
        starts, so `close()` joins it even if it has not reached `setup()` yet or has
        just left `finish()`."""
        thread = threading.Thread(
            target=self.process_request_thread, args=(request, client_address), daemon=True
        )
        self.endpoint.remember(thread)
        thread.start()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Silent: socketserver would print a traceback on the agent's own stderr."""
        self.endpoint.runtime.stats.endpoint_errors += 1


class EndpointServer:
    """Serves one Runtime over HTTP on a background thread."""

    def __init__(
        self,
        runtime: Runtime,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        *,
        max_body_bytes: int = MAX_BODY_BYTES,
        keepalive_s: float = DEFAULT_KEEPALIVE_S,
    ) -> None:
        if token is None and not is_loopback(host):
            raise ValueError(
                f"refusing to serve on {host} without a token: pass token= or bind 127.0.0.1"
            )
        self.runtime = runtime
        self.token = token
        self.max_body_bytes = max_body_bytes
        if not 0 < keepalive_s <= MAX_KEEPALIVE_S:
            raise ValueError(f"keepalive_s must be above 0 and at most {MAX_KEEPALIVE_S}")
        self.keepalive_s = keepalive_s
        self.closing = threading.Event()
        self._lock = threading.Lock()
        self._connections: dict[threading.Thread, socket.socket] = {}
        self._threads: set[threading.Thread] = set()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server_cls = type("_BoundServer", (_Server,), {"address_family": family})
        self._httpd: _Server = server_cls((host, port), _Handler)
        self._httpd.endpoint = self
        bound_host, bound_port = self._httpd.server_address[:2]
        shown = f"[{bound_host}]" if family == socket.AF_INET6 else str(bound_host)
        self.url = f"http://{shown}:{bound_port}"
        self.port = int(bound_port)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"agentops-endpoint:{bound_port}",
            daemon=True,
        )
        self._thread.start()

    def track(self, sock: socket.socket) -> None:
        with self._lock:
            self._connections[threading.current_thread()] = sock
        if self.closing.is_set():  # accepted just as close() took its snapshot
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def remember(self, thread: threading.Thread) -> None:
        with self._lock:
            self._threads = {t for t in self._threads if t.is_alive()}
            self._threads.add(thread)

    def untrack(self) -> None:
        with self._lock:
            self._connections.pop(threading.current_thread(), None)

    def close(self, timeout: float = 5.0) -> None:
        """Stop accepting, end open connections (SSE included) and join every thread."""
        if self.closing.is_set():
            return
        self.closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        # serve_forever has returned: no connection thread starts after this point
        with self._lock:
            open_connections = list(self._connections.values())
            threads = list(self._threads)
        for sock in open_connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._thread.join(max(0.0, deadline - time.monotonic()))

    def authorized(self, header: str | None) -> int | None:
        """None when the request may proceed, else the status to refuse it with."""
        if self.token is None:
            return None
        if not header or not header.startswith("Bearer "):
            return HTTPStatus.UNAUTHORIZED
        offered = header[len("Bearer ") :].strip().encode()
        if hmac.compare_digest(offered, self.token.encode()):
            return None
        return HTTPStatus.FORBIDDEN


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = f"agentops-runtime ({PROTOCOL_VERSION})"
    server: _Server
    timeout: ClassVar[float] = 30.0  # an idle keep-alive connection is dropped after this

    # -- plumbing -----------------------------------------------------------------
    @property
    def endpoint(self) -> EndpointServer:
        return self.server.endpoint

    def setup(self) -> None:
        super().setup()
        self.endpoint.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.endpoint.untrack()

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the agent's own stderr is not ours to write on."""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_OPTIONS(self) -> None:
        self._dispatch("OPTIONS")

    def _dispatch(self, method: str) -> None:
        self._streaming = False
        path = urlsplit(self.path).path
        try:
            name, params = self._route(method, path)
            if name not in PUBLIC_ROUTES:
                refused = self.endpoint.authorized(self.headers.get("Authorization"))
                if refused == HTTPStatus.UNAUTHORIZED:
                    raise HTTPError(refused, "missing bearer token")
                if refused is not None:
                    raise HTTPError(refused, "wrong token")
            handler: Callable[..., None] = getattr(self, name)
            handler(**params)
        except HTTPError as exc:
            self._send_error(exc.status, str(exc))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except TimeoutError:  # a client that stalled mid-request: drop it, quietly
            self.close_connection = True
            if not self._streaming:
                self._send_error(HTTPStatus.REQUEST_TIMEOUT, "request timed out")
        except Exception as exc:  # the agent must never see a handler's failure
            self.close_connection = True
            if not self._streaming:
                self._send_error(500, f"internal error: {type(exc).__name__}")

    def _route(self, method: str, path: str) -> tuple[str, dict[str, str]]:
        allowed = False
        for route_method, pattern, name in ROUTES:
            match = pattern.match(path)
            if match is None:
                continue
            if route_method == method:
                return name, {k: unquote(v) for k, v in match.groupdict().items()}
            allowed = True
        if allowed:
            raise HTTPError(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} not allowed on {path}")
        raise HTTPError(HTTPStatus.NOT_FOUND, f"no route {path}")

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            raise HTTPError(HTTPStatus.LENGTH_REQUIRED, "chunked bodies are not accepted")
        raw_length = self.headers.get("Content-Length", "0")
        try:
            length = int(raw_length)
        except ValueError:
            self.close_connection = True
            raise HTTPError(HTTPStatus.BAD_REQUEST, "invalid Content-Length") from None
        if length < 0:
            self.close_connection = True
            raise HTTPError(HTTPStatus.BAD_REQUEST, "invalid Content-Length")
        if length > self.endpoint.max_body_bytes:
            self.close_connection = True  # the unread body would poison the connection
            raise HTTPError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"body of {length} bytes exceeds {self.endpoint.max_body_bytes}",
            )
        return self.rfile.read(length) if length else b""

    def _json_body(self, model: type[BaseModel]) -> Any:
        body = self._read_body()
        try:
            json.loads(body or b"null")
        except (ValueError, UnicodeDecodeError) as exc:
            raise HTTPError(HTTPStatus.BAD_REQUEST, f"malformed JSON: {exc}") from None
        try:
            return model.model_validate_json(body or b"{}")
        except ValidationError as exc:
            raise HTTPError(HTTPStatus.BAD_REQUEST, _validation_message(exc)) from None

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_model(self, model: BaseModel, status: int = 200) -> None:
        self._send(status, model.model_dump_json().encode(), "application/json")

    def _send_error(self, status: int, message: str) -> None:
        line = " ".join(message.split())[:500]
        self._send_model(ErrorBody(error=line, status=int(status)), int(status))

    # -- reads --------------------------------------------------------------------
    def get_health(self) -> None:
        self._send_model(Health(agent=self.endpoint.runtime.agent_name))

    def get_agent(self) -> None:
        runtime = self.endpoint.runtime
        seq = runtime.events.last_seq  # read first: the snapshot covers at least this much
        info = runtime.agent_info()
        info.last_event_seq = seq
        self._send_model(info)

    def get_sessions(self) -> None:
        body = _SUMMARIES.dump_json(self.endpoint.runtime.session_summaries())
        self._send(200, body, "application/json")

    def get_session(self, id: str) -> None:
        detail = self.endpoint.runtime.session_detail(id)
        if detail is None:
            raise HTTPError(HTTPStatus.NOT_FOUND, f"no session {id}")
        self._send_model(detail)

    def get_approvals(self) -> None:
        body = _APPROVALS.dump_json(self.endpoint.runtime.pending_approvals())
        self._send(200, body, "application/json")

    def get_metrics(self) -> None:
        from .metrics import CONTENT_TYPE, render

        self._send(200, render(self.endpoint.runtime), CONTENT_TYPE)

    # -- control ------------------------------------------------------------------
    def post_kill(self, id: str) -> None:
        request: ControlRequest = self._json_body(ControlRequest)
        summary = self.endpoint.runtime.kill(id, request.operator, request.reason)
        if summary is None:
            raise HTTPError(HTTPStatus.NOT_FOUND, f"no session {id}")
        self._send_model(summary)

    def post_disable(self, name: str) -> None:
        request: ControlRequest = self._json_body(ControlRequest)
        state = self.endpoint.runtime.disable_workflow(name, request.operator, request.reason)
        self._send_model(state)

    def post_enable(self, name: str) -> None:
        request: ControlRequest = self._json_body(ControlRequest)
        state = self.endpoint.runtime.enable_workflow(name, request.operator, request.reason)
        self._send_model(state)

    def put_budgets(self) -> None:
        update: BudgetUpdate = self._json_body(BudgetUpdate)
        try:
            state = self.endpoint.runtime.set_budgets(update)
        except LookupError as exc:
            raise HTTPError(HTTPStatus.NOT_FOUND, str(exc).strip("'\"")) from None
        except ValueError as exc:
            raise HTTPError(HTTPStatus.BAD_REQUEST, str(exc)) from None
        self._send_model(state)

    def post_approval(self, id: str) -> None:
        decision: ApprovalDecision = self._json_body(ApprovalDecision)
        try:
            approval = self.endpoint.runtime.decide_approval(id, decision)
        except ValueError as exc:
            raise HTTPError(HTTPStatus.CONFLICT, str(exc)) from None
        if approval is None:
            raise HTTPError(HTTPStatus.NOT_FOUND, f"no approval {id}")
        self._send_model(approval)

    def put_policy(self) -> None:
        bundle: PolicyBundle = self._json_body(PolicyBundle)
        try:
            state = self.endpoint.runtime.load_policy(bundle)
        except PolicyError as exc:
            raise HTTPError(HTTPStatus.BAD_REQUEST, f"policy rejected: {exc}") from None
        self._send_model(state)

    def post_traces(self) -> None:
        from .otlp import OTLPError, decode_request, encode_response

        body = self._read_body()
        content_type = self.headers.get("Content-Type", "")
        encoding = self.headers.get("Content-Encoding", "")
        runtime = self.endpoint.runtime
        try:
            spans = decode_request(body, content_type, encoding, self.endpoint.max_body_bytes)
        except OTLPError as exc:
            runtime.stats.otlp_rejected_total += 1
            raise HTTPError(exc.status, str(exc)) from None
        accepted = runtime.ingest_spans(spans)
        rejected = len(spans) - accepted
        runtime.stats.otlp_rejected_total += rejected
        payload, response_type = encode_response(content_type, rejected)
        self._send(200, payload, response_type)

    # -- stream -------------------------------------------------------------------
    def get_events(self) -> None:
        endpoint = self.endpoint
        log = endpoint.runtime.events
        last = self._resume_from(log.last_seq)
        self.close_connection = True  # the stream is delimited by closing the connection
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Accel-Buffering", "no")
        self.send_header("Connection", "close")
        self.end_headers()
        self._streaming = True  # from here on an error cannot be a response any more
        # `id:` sets the stream's last event id from the start, so every keep-alive that
        # follows reaches an SSE parser as a (data-less) message: proof of life
        self.wfile.write(b"retry: 1000\nid: %d\n: agentops/1 event stream\n\n" % last)
        self.wfile.flush()
        quiet_since = time.monotonic()
        while not endpoint.closing.is_set():
            records = log.wait_after(last, _POLL_S)
            if records:
                chunk = bytearray()
                for record in records:
                    data = record.json()
                    if data is None:
                        continue
                    chunk += b"id: %d\nevent: %s\ndata: " % (record.seq, record.type.encode())
                    chunk += data
                    chunk += b"\n\n"
                last = records[-1].seq
                self.wfile.write(chunk)
                self.wfile.flush()
                quiet_since = time.monotonic()
            elif log.closed:
                break
            elif time.monotonic() - quiet_since >= endpoint.keepalive_s:
                self.wfile.write(b": keep-alive\n\n")
                self.wfile.flush()
                quiet_since = time.monotonic()

    def _resume_from(self, current: int) -> int:
        """Last-Event-ID (header, or `?last_event_id=` for clients that cannot set it)."""
        raw = self.headers.get("Last-Event-ID")
        if raw is None:
            raw = parse_qs(urlsplit(self.path).query).get("last_event_id", [None])[-1]
        if raw is None or not raw.strip():
            return current
        try:
            resume = int(raw.strip())
        except ValueError:
            raise HTTPError(HTTPStatus.BAD_REQUEST, "Last-Event-ID must be an integer") from None
        return max(0, min(resume, current))
