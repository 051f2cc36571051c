"""HTTP clients for the agentops/1 endpoint, used by the console, the CLI and the demo.

One sync and one async client with the same method names, so the CLI (sync) and the
console (asyncio) speak the protocol through the same typed surface. Errors are raised
as `EndpointError` with a one-line message fit for a terminal.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable, Container, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, Literal, TypeVar, cast
from urllib.parse import quote, urlsplit

import httpx
from httpx_sse import ServerSentEvent, connect_sse
from pydantic import BaseModel, ConfigDict, JsonValue, TypeAdapter, ValidationError
from pydantic_core import from_json

from .models import (
    NEXT_CURSOR_HEADER,
    SESSIONS_PAGE_DEFAULT,
    SESSIONS_PAGE_MAX,
    AgentInfo,
    Approval,
    ApprovalDecision,
    BudgetState,
    BudgetUpdate,
    ControlRequest,
    Event,
    EventType,
    Health,
    PolicyBundle,
    PolicyState,
    SessionDetail,
    SessionDetails,
    SessionStatus,
    SessionSummary,
    WorkflowState,
)

M = TypeVar("M", bound=BaseModel)
E = TypeVar("E", bound=BaseModel)
#: What httpx_sse's connect sends for an event stream (SSEReader's requests send it too).
_SSE_HEADERS = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
_SESSIONS = TypeAdapter(list[SessionSummary])
_APPROVALS = TypeAdapter(list[Approval])

DEFAULT_TIMEOUT = httpx.Timeout(5.0, connect=2.0)
#: A full listing stops after this many pages (5,000 sessions each): a peer that keeps
#: handing out cursors cannot keep a client looping.
MAX_PAGES = 1_000

SessionFilter = Literal["active", "finished"] | None


@dataclass(frozen=True, slots=True)
class SessionPage:
    """One page of GET /v1/sessions; `next_cursor` is None on the last page."""

    sessions: list[SessionSummary]
    next_cursor: str | None


def _page(response: httpx.Response) -> SessionPage:
    sessions = _decode_list(response, _SESSIONS)
    return SessionPage(sessions, response.headers.get(NEXT_CURSOR_HEADER) or None)


class _Listing:
    """Merges pages into one list by session id: a session that ended while the pages were
    read is listed twice by the agent (running, then finished); the later entry wins."""

    def __init__(self) -> None:
        self.by_id: dict[str, SessionSummary] = {}
        self.seen: set[str] = set()
        self.pages = 0

    def add(self, page: SessionPage) -> str | None:
        """The cursor to fetch next, or None when the listing is complete."""
        self.pages += 1
        for summary in page.sessions:
            self.by_id[summary.id] = summary
        cursor = page.next_cursor
        if cursor is None or cursor in self.seen or self.pages >= MAX_PAGES:
            return None
        self.seen.add(cursor)
        return cursor


class EndpointError(Exception):
    """A failed call to an agent endpoint; `status` is None when nothing answered."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _error_from(response: httpx.Response) -> EndpointError:
    try:
        detail = str(response.json().get("error", response.text))
    except (ValueError, AttributeError):
        detail = response.text.strip()[:200] or response.reason_phrase
    return EndpointError(f"{response.status_code} {detail}", response.status_code)


def _decode(response: httpx.Response, model: type[M]) -> M:
    if response.is_error:
        raise _error_from(response)
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise EndpointError(f"unexpected answer from endpoint: {exc.errors()[0]['msg']}") from exc


def _decode_list(response: httpx.Response, adapter: TypeAdapter[list[Any]]) -> list[Any]:
    if response.is_error:
        raise _error_from(response)
    try:
        return adapter.validate_json(response.content)
    except ValidationError as exc:
        raise EndpointError(f"unexpected answer from endpoint: {exc.errors()[0]['msg']}") from exc


@dataclass(frozen=True, slots=True)
class RawDetails:
    """GET /v1/session-details decoded but not validated: the watcher validates each
    session once, as the record it builds from it, instead of as a wire model and then again
    as a record. `sessions` are JSON objects; see SessionDetails for the three lists."""

    sessions: list[dict[str, Any]]
    missing: list[str]
    more: list[str]


def _json_answer(response: httpx.Response) -> Any:
    """An answer decoded but not validated: the endpoint's error, or its JSON."""
    return _json(_body(response))


def _body(response: httpx.Response) -> bytes:
    """An answer's body as it came: the endpoint's error, or its bytes."""
    if response.is_error:
        raise _error_from(response)
    return response.content


def _json(content: bytes) -> Any:
    try:
        return from_json(content)
    except ValueError as exc:
        raise EndpointError(f"unexpected answer from endpoint: not JSON ({exc})") from None


def raw_details(content: bytes) -> RawDetails:
    """A GET /v1/session-details body decoded but not validated (EndpointError when it is
    not one): the watcher reads the body straight from its bytes first, and this way when
    that does not take it (records/wire_rows.py)."""
    data = _json(content)
    sessions = data.get("sessions") if isinstance(data, dict) else None
    missing = data.get("missing", []) if isinstance(data, dict) else None
    more = data.get("more", []) if isinstance(data, dict) else None
    if not (
        isinstance(sessions, list)
        and all(isinstance(s, dict) for s in sessions)
        and isinstance(missing, list)
        and all(isinstance(i, str) for i in missing)
        and isinstance(more, list)
        and all(isinstance(i, str) for i in more)
    ):
        raise EndpointError("unexpected answer from endpoint: not a session-details object")
    return RawDetails(sessions, missing, more)


def parse_event(sse: ServerSentEvent) -> Event | None:
    """An SSE message as an Event; None for anything that is not one (keep-alives, junk)."""
    if not sse.data:
        return None
    return parse_data(sse.data)


def parse_data(data: str | bytes) -> Event | None:
    """An SSE message's data as an Event; None for anything that is not one (junk)."""
    try:
        return Event.model_validate_json(data)
    except ValidationError:
        return None


@dataclass(frozen=True, slots=True)
class Position:
    """An `id:`-only message: the stream stands at `seq` with no event for this client.
    A filtered stream (`types`) sends one when the events it skipped end a batch, so the
    client's position moves past them; the stream's opening message is one too."""

    seq: int


class _Head(BaseModel):
    model_config = ConfigDict(extra="ignore")


class SessionHead(_Head):
    """SessionSummary's identity and status (same types and defaults: tests/protocol)."""

    id: str
    workflow: str
    status: SessionStatus


class SpanHead(_Head):
    """A Span's identity and arguments."""

    id: str
    session_id: str
    arguments: JsonValue = None


class EventHead(_Head):
    """What a follower that only moves along needs of an event: its position and time, whose
    session it is (and whether that ended), and a span's identity and arguments. Validating
    only these costs a third of a full Event (whose session summary and span are most of it);
    a watcher gets ~22 events per 10-call session. Each field has Event's own type and
    default (tests/protocol/test_event_head.py checks it against the models)."""

    seq: int
    type: EventType
    at: datetime
    session_id: str | None = None
    session: SessionHead | None = None
    span: SpanHead | None = None


#: What turns an SSE message's data into an Event (None for junk); parse_data by default.
Decode = Callable[[bytes], Event | None]


def parse_light(
    data: bytes, light: Container[str], decode: Decode = parse_data
) -> Event | EventHead | None:
    """An SSE message's data as an EventHead when its type is in `light`, else through
    `decode`; None for anything that is neither (junk)."""
    try:
        head = EventHead.model_validate_json(data)
    except ValidationError:
        return None
    return head if head.type in light else decode(data)


class SSEReader:
    """Server-sent events from raw bytes, a whole chunk at a time (httpx_sse decodes line by
    line in Python: a fifth of a watcher's CPU on a busy stream). Each complete message
    gives its `data` as bytes (several data lines joined by a newline); a message without
    data gives its `id` as an int when it has a numeric one (a position: see Position), else
    None (a keep-alive comment: proof of life). Lines may end in CRLF, LF or CR, as the spec
    allows; `event` and `retry` are not needed (an event's JSON carries its type and seq)."""

    def __init__(self) -> None:
        self._rest = b""

    def feed(self, chunk: bytes) -> list[bytes | int | None]:
        data = self._rest + chunk
        tail = b""
        if b"\r" in data:
            if data.endswith(b"\r"):  # maybe the first half of a CRLF
                data, tail = data[:-1], b"\r"
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        end = data.rfind(b"\n\n")
        if end < 0:
            self._rest = data + tail
            return []
        self._rest = data[end + 2 :] + tail
        return [_message(block) for block in data[:end].split(b"\n\n") if block.strip(b"\n")]


def _message(block: bytes) -> bytes | int | None:
    if block.startswith(b"id:") or block.startswith(b"data:"):  # the usual shape, quickly
        lines = block.split(b"\n")
    else:
        lines = [line for line in block.split(b"\n") if line and not line.startswith(b":")]
    data: list[bytes] = []
    seq: bytes | None = None
    for line in lines:
        name, _, value = line.partition(b":")
        value = value[1:] if value.startswith(b" ") else value
        if name == b"data":
            data.append(value)
        elif name == b"id":
            seq = value
    joined = b"\n".join(data)
    if joined:
        return joined
    if seq is not None and seq.isdigit() and len(seq) <= 19:
        return int(seq)
    return None


@cache
def _verifying_context() -> ssl.SSLContext:
    """httpx's default (SSL_CERT_FILE / SSL_CERT_DIR, else certifi), built once per process:
    loading the CA bundle costs ~0.15 s idle and over 1 s on a loaded box, per client."""
    return httpx.create_ssl_context()


@cache
def _trust_nothing_context() -> ssl.SSLContext:
    """For http:// URLs, which never use TLS: cheap (no CA bundle), yet it still verifies
    certificates and host names against an empty trust store, so if TLS ever happens
    through it, it fails closed instead of trusting anyone."""
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def tls_for(url: str) -> ssl.SSLContext:
    """The SSL context of an httpx client for `url`: httpx builds one per client (loading
    the CA bundle) even for http://; this one is shared and built only when TLS is used."""
    if urlsplit(url).scheme.lower() == "https":
        return _verifying_context()
    return _trust_nothing_context()


def _headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _seg(value: str) -> str:
    """A path segment from untrusted text (ids come from agents): always fully quoted."""
    return quote(value, safe="")


#: (method, path, httpx keyword arguments)
Call = tuple[str, str, dict[str, Any]]


class _Calls:
    """One definition of each request, shared by the sync and the async client."""

    @staticmethod
    def get(path: str) -> Call:
        return "GET", path, {}

    @staticmethod
    def sessions(status: SessionFilter, limit: int, cursor: str | None) -> Call:
        params: dict[str, str | int] = {"limit": limit}
        if status is not None:
            params["status"] = status
        if cursor is not None:
            params["cursor"] = cursor
        return "GET", "/v1/sessions", {"params": params}

    @staticmethod
    def session(session_id: str) -> Call:
        return "GET", f"/v1/sessions/{_seg(session_id)}", {}

    @staticmethod
    def session_details(ids: Sequence[str]) -> Call:
        return "GET", "/v1/session-details", {"params": [("id", i) for i in ids]}

    @staticmethod
    def kill(session_id: str, operator: str, reason: str) -> Call:
        body = ControlRequest(operator=operator, reason=reason).model_dump()
        return "POST", f"/v1/sessions/{_seg(session_id)}/kill", {"json": body}

    @staticmethod
    def workflow(workflow: str, verb: str, operator: str, reason: str) -> Call:
        body = ControlRequest(operator=operator, reason=reason).model_dump()
        return "POST", f"/v1/workflows/{_seg(workflow)}/{verb}", {"json": body}

    @staticmethod
    def budgets(update: BudgetUpdate) -> Call:
        body = update.model_dump(include={"scope", "operator", "reason", *update.changes()})
        return "PUT", "/v1/budgets", {"json": body}

    @staticmethod
    def decide(approval_id: str, decision: ApprovalDecision) -> Call:
        return "POST", f"/v1/approvals/{_seg(approval_id)}", {"json": decision.model_dump()}

    @staticmethod
    def policy(bundle: PolicyBundle) -> Call:
        return "PUT", "/v1/policy", {"json": bundle.model_dump()}

    @staticmethod
    def events(last_event_id: int | None, types: Iterable[str] | None = None) -> dict[str, Any]:
        headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
        kwargs: dict[str, Any] = {"headers": headers, "timeout": httpx.Timeout(None, connect=2.0)}
        if types is not None:
            kwargs["params"] = {"types": ",".join(sorted(types))}
        return kwargs


class AgentClient:
    """Blocking client; one instance per endpoint, reusable, close it when done."""

    def __init__(
        self, base_url: str, token: str | None, timeout: httpx.Timeout = DEFAULT_TIMEOUT
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=_headers(token),
            timeout=timeout,
            verify=tls_for(self.base_url),
        )

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, call: Call) -> httpx.Response:
        method, path, kwargs = call
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise EndpointError(f"{self.base_url} unreachable: {exc}") from exc

    def health(self) -> Health:
        return _decode(self._call(_Calls.get("/v1/health")), Health)

    def agent(self) -> AgentInfo:
        return _decode(self._call(_Calls.get("/v1/agent")), AgentInfo)

    def sessions(
        self, status: SessionFilter = None, page_size: int = SESSIONS_PAGE_MAX
    ) -> list[SessionSummary]:
        """Every session the agent holds (all pages); see `sessions_page` for a bounded read."""
        listing = _Listing()
        cursor: str | None = None
        while True:
            cursor = listing.add(self.sessions_page(status, page_size, cursor))
            if cursor is None:
                return list(listing.by_id.values())

    def sessions_page(
        self,
        status: SessionFilter = None,
        limit: int = SESSIONS_PAGE_DEFAULT,
        cursor: str | None = None,
    ) -> SessionPage:
        """One page: running sessions first, then finished ones, oldest first."""
        return _page(self._call(_Calls.sessions(status, limit, cursor)))

    def session(self, session_id: str) -> SessionDetail:
        return _decode(self._call(_Calls.session(session_id)), SessionDetail)

    def session_details(self, ids: Sequence[str]) -> SessionDetails:
        """Up to SESSION_DETAILS_MAX sessions in one request (an older agent answers 404)."""
        return _decode(self._call(_Calls.session_details(ids)), SessionDetails)

    def kill(self, session_id: str, operator: str, reason: str = "") -> SessionSummary:
        return _decode(self._call(_Calls.kill(session_id, operator, reason)), SessionSummary)

    def disable(self, workflow: str, operator: str, reason: str = "") -> WorkflowState:
        call = _Calls.workflow(workflow, "disable", operator, reason)
        return _decode(self._call(call), WorkflowState)

    def enable(self, workflow: str, operator: str, reason: str = "") -> WorkflowState:
        call = _Calls.workflow(workflow, "enable", operator, reason)
        return _decode(self._call(call), WorkflowState)

    def set_budgets(self, update: BudgetUpdate) -> BudgetState:
        return _decode(self._call(_Calls.budgets(update)), BudgetState)

    def approvals(self) -> list[Approval]:
        return _decode_list(self._call(_Calls.get("/v1/approvals")), _APPROVALS)

    def decide(self, approval_id: str, decision: ApprovalDecision) -> Approval:
        return _decode(self._call(_Calls.decide(approval_id, decision)), Approval)

    def push_policy(self, bundle: PolicyBundle) -> PolicyState:
        return _decode(self._call(_Calls.policy(bundle)), PolicyState)

    def metrics(self) -> str:
        response = self._call(_Calls.get("/metrics"))
        if response.is_error:
            raise _error_from(response)
        return response.text

    def events(self, last_event_id: int | None = None) -> Iterator[Event]:
        """Follow the SSE stream until the server closes it (no reconnect here)."""
        try:
            with connect_sse(
                self._http, "GET", "/v1/events", **_Calls.events(last_event_id)
            ) as source:
                if source.response.is_error:
                    source.response.read()
                    raise _error_from(source.response)
                for sse in source.iter_sse():
                    event = parse_event(sse)
                    if event is not None:
                        yield event
        except httpx.HTTPError as exc:
            raise EndpointError(f"{self.base_url} stream failed: {exc}") from exc


class AsyncAgentClient:
    """The asyncio twin of AgentClient, for the console's workers."""

    def __init__(
        self, base_url: str, token: str | None, timeout: httpx.Timeout = DEFAULT_TIMEOUT
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=_headers(token),
            timeout=timeout,
            verify=tls_for(self.base_url),
        )

    async def __aenter__(self) -> AsyncAgentClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, call: Call) -> httpx.Response:
        method, path, kwargs = call
        try:
            return await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise EndpointError(f"{self.base_url} unreachable: {exc}") from exc

    async def health(self) -> Health:
        return _decode(await self._call(_Calls.get("/v1/health")), Health)

    async def agent(self) -> AgentInfo:
        return _decode(await self._call(_Calls.get("/v1/agent")), AgentInfo)

    async def sessions(
        self, status: SessionFilter = None, page_size: int = SESSIONS_PAGE_MAX
    ) -> list[SessionSummary]:
        """Every session the agent holds (all pages); see `sessions_page` for a bounded read."""
        listing = _Listing()
        cursor: str | None = None
        while True:
            cursor = listing.add(await self.sessions_page(status, page_size, cursor))
            if cursor is None:
                return list(listing.by_id.values())

    async def sessions_page(
        self,
        status: SessionFilter = None,
        limit: int = SESSIONS_PAGE_DEFAULT,
        cursor: str | None = None,
    ) -> SessionPage:
        """One page: running sessions first, then finished ones, oldest first."""
        return _page(await self._call(_Calls.sessions(status, limit, cursor)))

    async def session(self, session_id: str) -> SessionDetail:
        return _decode(await self._call(_Calls.session(session_id)), SessionDetail)

    async def session_details(self, ids: Sequence[str]) -> SessionDetails:
        """Up to SESSION_DETAILS_MAX sessions in one request (an older agent answers 404)."""
        return _decode(await self._call(_Calls.session_details(ids)), SessionDetails)

    async def session_details_body(self, ids: Sequence[str]) -> bytes:
        """The same answer's body, not decoded (the endpoint's error is an EndpointError;
        `raw_details` decodes it without validating)."""
        return _body(await self._call(_Calls.session_details(ids)))

    async def session_raw(self, session_id: str) -> dict[str, Any]:
        """GET /v1/sessions/{id} decoded but not validated (see RawDetails)."""
        data = _json_answer(await self._call(_Calls.session(session_id)))
        if not isinstance(data, dict):
            raise EndpointError("unexpected answer from endpoint: not a session")
        return data

    async def kill(self, session_id: str, operator: str, reason: str = "") -> SessionSummary:
        call = _Calls.kill(session_id, operator, reason)
        return _decode(await self._call(call), SessionSummary)

    async def disable(self, workflow: str, operator: str, reason: str = "") -> WorkflowState:
        call = _Calls.workflow(workflow, "disable", operator, reason)
        return _decode(await self._call(call), WorkflowState)

    async def enable(self, workflow: str, operator: str, reason: str = "") -> WorkflowState:
        call = _Calls.workflow(workflow, "enable", operator, reason)
        return _decode(await self._call(call), WorkflowState)

    async def set_budgets(self, update: BudgetUpdate) -> BudgetState:
        return _decode(await self._call(_Calls.budgets(update)), BudgetState)

    async def approvals(self) -> list[Approval]:
        return _decode_list(await self._call(_Calls.get("/v1/approvals")), _APPROVALS)

    async def decide(self, approval_id: str, decision: ApprovalDecision) -> Approval:
        return _decode(await self._call(_Calls.decide(approval_id, decision)), Approval)

    async def push_policy(self, bundle: PolicyBundle) -> PolicyState:
        return _decode(await self._call(_Calls.policy(bundle)), PolicyState)

    async def events(
        self, last_event_id: int | None = None, types: Iterable[str] | None = None
    ) -> AsyncIterator[Event]:
        """Follow the SSE stream until the server closes it; callers own reconnecting."""
        async for event in self.stream(last_event_id, types):
            if isinstance(event, Event):
                yield event

    def stream(
        self,
        last_event_id: int | None = None,
        types: Iterable[str] | None = None,
        decode: Decode = parse_data,
    ) -> AsyncIterator[Event | Position | None]:
        """The SSE stream with its keep-alives as None: a caller that must tell a quiet
        agent from a hung one counts them as life. With `types`, only events of those types
        (and `gap`) come, and Position messages say how far the stream has gone past what it
        skipped; an older agent ignores `types` and sends every event. `decode` lets a
        reader validate less of each event (the console skips spans: console/decode.py)."""
        return self._stream(last_event_id, types, decode)

    def stream_light(
        self,
        last_event_id: int | None,
        light: Container[str],
        types: Iterable[str] | None = None,
        decode: Decode = parse_data,
    ) -> AsyncIterator[Event | EventHead | Position | None]:
        """`stream`, with the events of a type in `light` as EventHead (see parse_light)."""

        def parse(data: bytes) -> Event | EventHead | None:
            return parse_light(data, light, decode)

        stream = self._stream(last_event_id, types, parse)
        return cast("AsyncIterator[Event | EventHead | Position | None]", stream)

    async def _stream(
        self,
        last_event_id: int | None,
        types: Iterable[str] | None,
        parse: Callable[[bytes], E | None],
    ) -> AsyncIterator[E | Position | None]:
        """GET /v1/events read a chunk at a time (SSEReader), each message's data through
        `parse` (junk gives None, as a keep-alive does)."""
        kwargs = _Calls.events(last_event_id, types)
        kwargs["headers"] = {**kwargs["headers"], **_SSE_HEADERS}
        try:
            async with self._http.stream("GET", "/v1/events", **kwargs) as response:
                if response.is_error:
                    await response.aread()
                    raise _error_from(response)
                kind = response.headers.get("content-type", "").partition(";")[0].strip()
                if kind != "text/event-stream":
                    raise EndpointError(f"{self.base_url}/v1/events is not an event stream")
                reader = SSEReader()
                async for chunk in response.aiter_bytes():
                    for message in reader.feed(chunk):
                        if message is None or isinstance(message, int):
                            yield None if message is None else Position(message)
                        else:
                            yield parse(message)
        except httpx.HTTPError as exc:
            raise EndpointError(f"{self.base_url} stream failed: {exc}") from exc
