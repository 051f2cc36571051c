"""The agent endpoint (protocol agentops/1): telemetry reads, control writes, SSE, OTLP in.

It runs inside the agent process, so it is built on the standard library's threading HTTP
server: no web framework, no event loop of its own, nothing that could clash with the
agent's own asyncio loop or threads. Each admitted connection gets a daemon thread;
connections over the caps get a 503 from the accepting thread and no thread; `close()`
shuts every open connection and joins the threads so nothing is left behind.

Every failure is answered as `{"error": "<one line>", "status": N}` (the standard
library's own HTML errors included); no request, however malformed, can raise into the
agent's own threads. The checks every request passes (tokens, Host, Origin, content
types, JSON depth) are in `http_checks` and docs/endpoint.md.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import BaseModel, TypeAdapter, ValidationError

from ..protocol.models import (
    MAX_BODY_BYTES,
    MAX_JSON_DEPTH,
    NEXT_CURSOR_HEADER,
    SESSION_DETAILS_MAX,
    SESSION_DETAILS_MAX_BYTES,
    SESSIONS_PAGE_DEFAULT,
    SESSIONS_PAGE_MAX,
    Approval,
    ApprovalDecision,
    BudgetUpdate,
    ControlRequest,
    ErrorBody,
    Health,
    PolicyBundle,
    SessionSummary,
    StrictModel,
)
from ..protocol.text import one_line
from .errors import PolicyError
from .http_checks import (
    PHASES,
    Phase,
    decode_cursor,
    encode_cursor,
    host_problem,
    is_loopback,
    json_too_deep,
    media_type,
    normalize_origins,
    origin_problem,
)
from .http_checks import allowed_hosts as allowed_hosts_for
from .session_json import detail_json
from .sse import Broadcast, Broadcasts, Gap, gap_message, parse_types
from .tokens import checked_token

if TYPE_CHECKING:
    from .core import Runtime
    from .session import Session

__all__ = ["EndpointServer", "HTTPError", "is_loopback", "page_json"]

_SUMMARIES = TypeAdapter(list[SessionSummary])
#: Summaries built and serialised per slice of a page, the interpreter lock let go between
#: slices: one serialiser call for a 500-session page held it ~2 ms, and the agent's thread
#: (a guarded tool call) waited that long whenever a console fetched a page.
PAGE_SLICE = 32
_APPROVALS = TypeAdapter(list[Approval])

#: How often an idle SSE stream gets a keep-alive comment: a console tells a quiet agent
#: from a hung one by these, so the interval bounds how fast a hang is noticed.
DEFAULT_KEEPALIVE_S = 5.0
#: Consoles probe a stream silent for 20 s: keep-alives must come more often than that.
MAX_KEEPALIVE_S = 15.0
#: Longest error text an endpoint answers with (`{"error": ..., "status": N}`).
ERROR_CHARS = 500
#: How often an SSE thread wakes to notice that the server is closing.
_POLL_S = 0.25
#: Pending connections the kernel queues before accept (socketserver's default is 5).
LISTEN_BACKLOG = 512
#: Open connections at most, and connections without an authenticated request yet.
DEFAULT_MAX_CONNECTIONS = 256
DEFAULT_MAX_UNAUTHENTICATED = 32
#: A new connection must complete an authenticated request's headers within this.
DEFAULT_HEADER_TIMEOUT_S = 10.0
#: A refused connection is closed this long after its 503 (and at most this many wait).
_LINGER_S = 1.0
_MAX_LINGERING = 256
#: A stream takes at most this many events per wake-up and writes at most this many
#: bytes per write: its memory is bounded however far behind its reader is.
STREAM_BATCH_EVENTS = 2048
STREAM_CHUNK_BYTES = 1024 * 1024
#: A stream writes at most once per this: ten streams woken per event would take the GIL
#: from the agent ten times per event; this way each wake-up carries what came meanwhile.
STREAM_FLUSH_S = 0.001
#: The shared segments kept for streams a little behind the others (bytes).
STREAM_KEEP_BYTES = 8 * 1024 * 1024
SERVER_NAME = "agentops/1"

Access = Literal["control", "read"]


class HTTPError(Exception):
    """Raised inside a handler to answer with `status` and a one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


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
        ("GET", r"/v1/session-details", "get_session_details"),
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
#: What the read-only token may call; everything else needs the control token (OTLP ingest
#: included: it creates sessions and raises flags an operator acts on).
READ_ROUTES = frozenset(
    {
        "get_agent",
        "get_sessions",
        "get_session",
        "get_session_details",
        "get_events",
        "get_approvals",
        "get_metrics",
    }
)
#: Control routes whose body must be `application/json` (415 otherwise).
JSON_ROUTES = frozenset(
    {"post_kill", "post_disable", "post_enable", "put_budgets", "post_approval", "put_policy"}
)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # EndpointServer.close joins its own, after closing their sockets
    request_queue_size = LISTEN_BACKLOG  # socketserver's 5 left bursts unanswered for seconds
    endpoint: EndpointServer

    def process_request(self, request: Any, client_address: Any) -> None:
        """One thread per admitted connection, remembered before it starts so `close()`
        joins it even if it has not reached `setup()` yet; over the caps, a 503 at once
        from this thread, and no thread at all."""
        endpoint = self.endpoint
        with contextlib.suppress(OSError):
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        refusal = endpoint.admit(request)
        if refusal is not None:
            endpoint.refuse(request, refusal)
            return
        thread = threading.Thread(
            target=self.process_request_thread, args=(request, client_address), daemon=True
        )
        endpoint.remember(thread)
        thread.start()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.endpoint.release(request)

    def service_actions(self) -> None:
        """Runs between accepts (every poll interval): drop slow unauthenticated clients."""
        self.endpoint.reap()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Silent: socketserver would print a traceback on the agent's own stderr."""
        self.endpoint.runtime.stats.endpoint_errors += 1


@dataclass(slots=True)
class _Connection:
    #: Until its first authenticated request a connection counts against the (low)
    #: unauthenticated cap and must send that request's headers before `deadline`.
    authenticated: bool
    deadline: float
    reaped: bool = False


class EndpointServer:
    """Serves one Runtime over HTTP on a background thread."""

    def __init__(
        self,
        runtime: Runtime,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        *,
        read_token: str | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
        keepalive_s: float = DEFAULT_KEEPALIVE_S,
        allowed_origins: Iterable[str] = (),
        allowed_hosts: Iterable[str] = (),
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_unauthenticated: int = DEFAULT_MAX_UNAUTHENTICATED,
        header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S,
    ) -> None:
        checked = checked_token(token, "token")
        if checked is None:
            raise ValueError("the endpoint needs a token (Runtime generates one if none is given)")
        self.token: str = checked
        self.read_token = checked_token(read_token, "read_token")
        if self.read_token == self.token:
            raise ValueError("read_token must differ from token")
        if not 0 < keepalive_s <= MAX_KEEPALIVE_S:
            raise ValueError(f"keepalive_s must be above 0 and at most {MAX_KEEPALIVE_S}")
        if not 0 < max_unauthenticated <= max_connections:
            raise ValueError("need 0 < max_unauthenticated <= max_connections")
        if not header_timeout_s > 0:
            raise ValueError("header_timeout_s must be above 0")
        self.runtime = runtime
        self.broadcasts = Broadcasts(
            runtime.events, STREAM_BATCH_EVENTS, STREAM_CHUNK_BYTES, STREAM_KEEP_BYTES
        )
        self.max_body_bytes = max_body_bytes
        self.keepalive_s = keepalive_s
        self.max_connections = max_connections
        self.max_unauthenticated = max_unauthenticated
        self.header_timeout_s = header_timeout_s
        self.origins = normalize_origins(allowed_origins)
        self.closing = threading.Event()
        self._lock = threading.Lock()
        self._connections: dict[socket.socket, _Connection] = {}
        self._unauthenticated = 0
        self._refused: deque[tuple[float, socket.socket]] = deque()
        self._threads: set[threading.Thread] = set()
        self.refused_total = 0
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server_cls = type("_BoundServer", (_Server,), {"address_family": family})
        self._httpd: _Server = server_cls((host, port), _Handler)
        self._httpd.endpoint = self
        bound_host, bound_port = self._httpd.server_address[:2]
        shown = f"[{bound_host}]" if family == socket.AF_INET6 else str(bound_host)
        self.url = f"http://{shown}:{bound_port}"
        self.port = int(bound_port)
        self.hosts = allowed_hosts_for(str(bound_host), self.port, allowed_hosts)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"agentops-endpoint:{bound_port}",
            daemon=True,
        )
        self._thread.start()

    # -- connections (admit and refuse run on the accepting thread) -----------------
    def admit(self, sock: socket.socket) -> str | None:
        """Register a new connection; the reason to refuse it when over a cap."""
        with self._lock:
            if self.closing.is_set():
                return "the endpoint is closing"
            if len(self._connections) >= self.max_connections:
                return f"too many connections (at most {self.max_connections})"
            if self._unauthenticated >= self.max_unauthenticated:
                return (
                    "too many connections without an authenticated request "
                    f"(at most {self.max_unauthenticated})"
                )
            deadline = time.monotonic() + self.header_timeout_s
            self._connections[sock] = _Connection(authenticated=False, deadline=deadline)
            self._unauthenticated += 1
        return None

    def refuse(self, sock: socket.socket, reason: str) -> None:
        """A 503 in one non-blocking send, then the socket lingers briefly (closing it with
        the request unread would reset the connection before the client reads the 503)."""
        body = ErrorBody(error=reason, status=503).model_dump_json().encode()
        head = (
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n"
            f"Server: {SERVER_NAME}\r\n\r\n"
        ).encode()
        self.refused_total += 1
        with contextlib.suppress(OSError):
            sock.setblocking(False)
            sock.send(head + body)
            sock.shutdown(socket.SHUT_WR)
        with self._lock:
            self._refused.append((time.monotonic() + _LINGER_S, sock))
            overflow = len(self._refused) > _MAX_LINGERING
            oldest = self._refused.popleft()[1] if overflow else None
        if oldest is not None:
            oldest.close()

    def authenticate(self, sock: socket.socket) -> None:
        with self._lock:
            conn = self._connections.get(sock)
            if conn is not None and not conn.authenticated:
                conn.authenticated = True
                self._unauthenticated -= 1

    def release(self, sock: socket.socket) -> None:
        with self._lock:
            conn = self._connections.pop(sock, None)
            if conn is not None and not conn.authenticated:
                self._unauthenticated -= 1

    def reap(self) -> None:
        """Shut connections that sent no authenticated request in time (slow headers), and
        close refused sockets whose linger is over."""
        now = time.monotonic()
        with self._lock:
            late = [
                (sock, conn)
                for sock, conn in self._connections.items()
                if not conn.authenticated and not conn.reaped and conn.deadline < now
            ]
            for _, conn in late:
                conn.reaped = True
            done = []
            while self._refused and self._refused[0][0] < now:
                done.append(self._refused.popleft()[1])
        for sock, _ in late:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for sock in done:
            sock.close()

    def remember(self, thread: threading.Thread) -> None:
        with self._lock:
            self._threads = {t for t in self._threads if t.is_alive()}
            self._threads.add(thread)

    def close(self, timeout: float = 5.0) -> None:
        """Stop accepting, end open connections (SSE included) and join every thread."""
        if self.closing.is_set():
            return
        self.closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        # serve_forever has returned: no connection thread starts after this point
        with self._lock:
            open_connections = list(self._connections)
            threads = list(self._threads)
            refused = [sock for _, sock in self._refused]
            self._refused.clear()
        for sock in open_connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for sock in refused:
            sock.close()
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._thread.join(max(0.0, deadline - time.monotonic()))

    # -- request checks ---------------------------------------------------------------
    def access(self, header: str | None) -> Access:
        """Which token the request carries; HTTPError when none of ours (401 / 403).
        Both tokens are always compared, in constant time."""
        scheme, _, offered = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not offered.strip():
            raise HTTPError(HTTPStatus.UNAUTHORIZED, "missing bearer token")
        given = offered.strip().encode()
        is_control = hmac.compare_digest(given, self.token.encode())
        read = self.read_token or ""
        is_read = hmac.compare_digest(given, read.encode()) and bool(read)
        if is_control:
            return "control"
        if is_read:
            return "read"
        raise HTTPError(HTTPStatus.FORBIDDEN, "wrong token")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # a request line too broken to name its version is still answered with a status line
    # (the default, HTTP/0.9, would write the error body with no status line at all)
    default_request_version = "HTTP/1.0"
    server: _Server
    _headers_buffer: list[bytes]  # BaseHTTPRequestHandler's, untyped in typeshed
    timeout: ClassVar[float] = 30.0  # an idle keep-alive connection is dropped after this

    # -- plumbing -----------------------------------------------------------------
    @property
    def endpoint(self) -> EndpointServer:
        return self.server.endpoint

    def version_string(self) -> str:
        """`Server: agentops/1`, not the Python version."""
        return SERVER_NAME

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the agent's own stderr is not ours to write on."""

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The standard library's own errors (414, 431, a broken request line, 501) as the
        same one-line JSON as every other error, and the connection closed after them."""
        self.close_connection = True
        self._send_error(code, message or HTTPStatus(code).phrase)

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
            self._check_framing()
            self._check_origin_and_host()
            name, params = self._route(method, path)
            if name not in PUBLIC_ROUTES:
                access = self.endpoint.access(self.headers.get("Authorization"))
                self.endpoint.authenticate(self.connection)
                if access == "read" and name not in READ_ROUTES:
                    raise HTTPError(
                        HTTPStatus.FORBIDDEN,
                        f"the read-only token cannot call {method} {path}: "
                        "it needs the control token",
                    )
            if name in JSON_ROUTES and media_type(self.headers.get("Content-Type")) != (
                "application/json"
            ):
                self.close_connection = True  # the body stays unread
                raise HTTPError(
                    HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "Content-Type must be application/json"
                )
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

    def _check_framing(self) -> None:
        """One unambiguous body length, or the connection cannot be trusted past this
        request (request smuggling): refused and closed."""
        lengths = {v.strip() for v in self.headers.get_all("Content-Length") or ()}
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            raise HTTPError(HTTPStatus.LENGTH_REQUIRED, "chunked bodies are not accepted")
        if len(lengths) > 1:
            self.close_connection = True
            raise HTTPError(HTTPStatus.BAD_REQUEST, "conflicting Content-Length headers")
        if len(self.headers.get_all("Host") or ()) > 1:
            self.close_connection = True
            raise HTTPError(HTTPStatus.BAD_REQUEST, "more than one Host header")

    def _check_origin_and_host(self) -> None:
        endpoint = self.endpoint
        problem = origin_problem(self.headers.get("Origin"), endpoint.origins) or host_problem(
            self.headers.get("Host"), endpoint.hosts
        )
        if problem is not None:
            self.close_connection = True
            raise HTTPError(HTTPStatus.FORBIDDEN, problem)

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

    def _json_body(self, model: type[StrictModel]) -> Any:
        body = self._read_body()
        _check_depth(body)
        try:
            json.loads(body or b"null")
        except (ValueError, UnicodeDecodeError) as exc:
            raise HTTPError(HTTPStatus.BAD_REQUEST, f"malformed JSON: {exc}") from None
        try:
            return model.from_wire(body or b"{}")
        except ValidationError as exc:
            raise HTTPError(HTTPStatus.BAD_REQUEST, _validation_message(exc)) from None

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Status line, headers and body in one write: every write is a trip through the
        GIL, and under a busy agent each trip can wait behind every other thread."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for key, value in headers:
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self._headers_buffer.append(b"\r\n")
        if self.command != "HEAD":
            self._headers_buffer.append(body)
        self.flush_headers()

    def _send_model(self, model: BaseModel, status: int = 200) -> None:
        self._send(status, model.model_dump_json().encode(), "application/json")

    def _send_error(self, status: int, message: str) -> None:
        line = one_line(message, ERROR_CHARS)
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
        phases, limit, after = _page_query(urlsplit(self.path).query)
        sessions, position = self.endpoint.runtime.session_page(phases, limit, after)
        headers = [] if position is None else [(NEXT_CURSOR_HEADER, encode_cursor(position))]
        self._send(200, page_json(sessions), "application/json", headers)

    def get_session(self, id: str) -> None:
        session = self.endpoint.runtime.get(id)
        if session is None:
            raise HTTPError(HTTPStatus.NOT_FOUND, f"no session {id}")
        self._send(200, detail_json(session), "application/json")

    def get_session_details(self) -> None:
        """Several sessions in one answer, in the order asked. Each detail is built and
        serialised here, on the server thread (the runtime hands out references only); the
        body stops growing at SESSION_DETAILS_MAX_BYTES and the ids not looked at are
        answered as `more`, so an answer's size is bounded whatever the sessions hold.
        A detail is rendered from plain values (session_json.detail_json), not built as a
        model: the same bytes at a third of the agent's CPU."""
        ids = _details_query(urlsplit(self.path).query)
        runtime = self.endpoint.runtime
        parts: list[bytes] = []
        missing: list[str] = []
        more: list[str] = []
        size = 0
        for index, session_id in enumerate(ids):
            session = runtime.get(session_id)
            if session is None:
                missing.append(session_id)
                continue
            blob = detail_json(session)
            if parts and size + len(blob) > SESSION_DETAILS_MAX_BYTES:
                more = ids[index:]
                break
            parts.append(blob)
            size += len(blob) + 1
        body = b"".join(
            (
                b'{"sessions":[',
                b",".join(parts),
                b'],"missing":',
                json.dumps(missing).encode(),
                b',"more":',
                json.dumps(more).encode(),
                b"}",
            )
        )
        self._send(200, body, "application/json")

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
        if media_type(content_type) == "application/json" and not encoding:
            _check_depth(body)  # a gzip body is checked by OTLP's own JSON decoding
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
        types = self._stream_types()
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
        oldest = log.first_seq
        if last + 1 < oldest:  # resumed from before the ring: say so, never skip silently
            self.wfile.write(gap_message(last + 1, oldest - 1, "resumed before the event log"))
            return
        broadcast = endpoint.broadcasts.acquire(types)
        try:
            self._stream(broadcast, last)
        finally:
            endpoint.broadcasts.release(broadcast)

    def _stream(self, broadcast: Broadcast, last: int) -> None:
        endpoint = self.endpoint
        log = endpoint.runtime.events
        quiet_since = time.monotonic()
        flushed = 0.0  # nothing written yet: the first event goes at once
        behind = False
        while not endpoint.closing.is_set():
            # at most one write per STREAM_FLUSH_S: while the agent is busy, each wake-up
            # carries a batch instead of an event (the first event after a pause goes at once)
            pause = flushed + STREAM_FLUSH_S - time.monotonic()
            if pause > 0 and not behind:
                time.sleep(pause)
            if log.wait(last, _POLL_S):
                taken = broadcast.take(last)
                if isinstance(taken, Gap):  # the reader fell behind the ring
                    self.wfile.write(gap_message(taken.first, taken.last, "fell behind"))
                    return
                chunks, position = taken
                behind = position - last >= STREAM_BATCH_EVENTS // 2  # catch up at once
                last = position
                for chunk in chunks:
                    self.wfile.write(chunk)
                quiet_since = flushed = time.monotonic()
            elif log.closed:
                break
            elif time.monotonic() - quiet_since >= endpoint.keepalive_s:
                self.wfile.write(b": keep-alive\n\n")
                quiet_since = time.monotonic()

    def _stream_types(self) -> frozenset[str] | None:
        """`?types=a,b`: only those event types (and `gap`); None: all of them."""
        query = urlsplit(self.path).query
        values = parse_qs(query, keep_blank_values=True).get("types") if query else None
        if values is None:
            return None
        try:
            return parse_types(values)
        except ValueError as exc:
            raise HTTPError(HTTPStatus.BAD_REQUEST, str(exc)) from None

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


def _check_depth(body: bytes) -> None:
    if json_too_deep(body, MAX_JSON_DEPTH):
        raise HTTPError(
            HTTPStatus.BAD_REQUEST, f"malformed JSON: nested deeper than {MAX_JSON_DEPTH}"
        )


def _query(query: str, known: set[str], repeatable: str | None = None) -> dict[str, list[str]]:
    """A read's query string: only `known` parameters, each at most once (but `repeatable`);
    400 for anything else."""
    try:
        params = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise HTTPError(HTTPStatus.BAD_REQUEST, "malformed query string") from None
    unknown = set(params) - known
    if unknown:
        raise HTTPError(HTTPStatus.BAD_REQUEST, f"unknown parameter {sorted(unknown)[0]!r}")
    if any(len(values) > 1 for key, values in params.items() if key != repeatable):
        raise HTTPError(HTTPStatus.BAD_REQUEST, "each parameter at most once")
    return params


def _details_query(query: str) -> list[str]:
    """`?id=A&id=B...` of GET /v1/session-details: 1 to SESSION_DETAILS_MAX distinct ids."""
    ids = _query(query, {"id"}, repeatable="id").get("id", [])
    if not 1 <= len(ids) <= SESSION_DETAILS_MAX:
        raise HTTPError(
            HTTPStatus.BAD_REQUEST, f"give 1 to {SESSION_DETAILS_MAX} session ids as id=<id>"
        )
    if not all(ids):
        raise HTTPError(HTTPStatus.BAD_REQUEST, "an empty session id")
    if len(set(ids)) != len(ids):
        raise HTTPError(HTTPStatus.BAD_REQUEST, "each session id at most once")
    return ids


def page_json(sessions: list[Session]) -> bytes:
    """`_SUMMARIES.dump_json` of the sessions' summaries, byte for byte, made PAGE_SLICE at a
    time with the interpreter lock released in between (`time.sleep(0)`), so no single step
    of a page holds the agent's thread back for more than a slice (~0.15 ms)."""
    parts: list[bytes] = []
    for start in range(0, len(sessions), PAGE_SLICE):
        if start:
            time.sleep(0)
        chunk = [session.summary() for session in sessions[start : start + PAGE_SLICE]]
        parts.append(_SUMMARIES.dump_json(chunk)[1:-1])
    return b"[" + b",".join(parts) + b"]"


def _page_query(query: str) -> tuple[tuple[Phase, ...], int, tuple[Phase, int] | None]:
    """`?status=active|finished&limit=N&cursor=C` of GET /v1/sessions; 400 for anything else."""
    params = _query(query, {"status", "limit", "cursor"})
    status = params.get("status", [None])[0]
    phases = PHASES if status is None else tuple(p for p in PHASES if p == status)
    if not phases:
        raise HTTPError(HTTPStatus.BAD_REQUEST, "status must be 'active' or 'finished'")
    raw_limit = params.get("limit", [str(SESSIONS_PAGE_DEFAULT)])[0]
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= SESSIONS_PAGE_MAX:
        raise HTTPError(
            HTTPStatus.BAD_REQUEST, f"limit must be an integer from 1 to {SESSIONS_PAGE_MAX}"
        )
    after = None
    if "cursor" in params:
        try:
            after = decode_cursor(params["cursor"][0])
        except ValueError:
            raise HTTPError(HTTPStatus.BAD_REQUEST, "invalid cursor") from None
        if after[0] not in phases:
            raise HTTPError(HTTPStatus.BAD_REQUEST, "cursor does not match status")
    return phases, int(raw_limit), after
