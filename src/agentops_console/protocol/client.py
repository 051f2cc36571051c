"""HTTP clients for the agentops/1 endpoint, used by the console, the CLI and the demo.

One sync and one async client with the same method names, so the CLI (sync) and the
console (asyncio) speak the protocol through the same typed surface. Errors are raised
as `EndpointError` with a one-line message fit for a terminal.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, TypeVar

import httpx
from httpx_sse import ServerSentEvent, aconnect_sse, connect_sse
from pydantic import BaseModel, TypeAdapter, ValidationError

from .models import (
    AgentInfo,
    Approval,
    ApprovalDecision,
    BudgetState,
    BudgetUpdate,
    ControlRequest,
    Event,
    Health,
    PolicyBundle,
    PolicyState,
    SessionDetail,
    SessionSummary,
    WorkflowState,
)

M = TypeVar("M", bound=BaseModel)
_SESSIONS = TypeAdapter(list[SessionSummary])
_APPROVALS = TypeAdapter(list[Approval])

DEFAULT_TIMEOUT = httpx.Timeout(5.0, connect=2.0)


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


def parse_event(sse: ServerSentEvent) -> Event | None:
    """An SSE message as an Event; None for anything that is not one (keep-alives, junk)."""
    if not sse.data:
        return None
    try:
        return Event.model_validate_json(sse.data)
    except ValidationError:
        return None


def _headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _control(operator: str, reason: str) -> dict[str, Any]:
    return ControlRequest(operator=operator, reason=reason).model_dump()


class AgentClient:
    """Blocking client; one instance per endpoint, reusable, close it when done."""

    def __init__(
        self, base_url: str, token: str | None, timeout: httpx.Timeout = DEFAULT_TIMEOUT
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url, headers=_headers(token), timeout=timeout
        )

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise EndpointError(f"{self.base_url} unreachable: {exc}") from exc

    def health(self) -> Health:
        return _decode(self._request("GET", "/v1/health"), Health)

    def agent(self) -> AgentInfo:
        return _decode(self._request("GET", "/v1/agent"), AgentInfo)

    def sessions(self) -> list[SessionSummary]:
        return _decode_list(self._request("GET", "/v1/sessions"), _SESSIONS)

    def session(self, session_id: str) -> SessionDetail:
        return _decode(self._request("GET", f"/v1/sessions/{session_id}"), SessionDetail)

    def kill(self, session_id: str, operator: str, reason: str = "") -> SessionSummary:
        response = self._request(
            "POST", f"/v1/sessions/{session_id}/kill", json=_control(operator, reason)
        )
        return _decode(response, SessionSummary)

    def disable(self, workflow: str, operator: str, reason: str = "") -> WorkflowState:
        response = self._request(
            "POST", f"/v1/workflows/{workflow}/disable", json=_control(operator, reason)
        )
        return _decode(response, WorkflowState)

    def enable(self, workflow: str, operator: str, reason: str = "") -> WorkflowState:
        response = self._request(
            "POST", f"/v1/workflows/{workflow}/enable", json=_control(operator, reason)
        )
        return _decode(response, WorkflowState)

    def set_budgets(self, update: BudgetUpdate) -> BudgetState:
        body = update.model_dump(include={"scope", "operator", "reason", *update.changes()})
        return _decode(self._request("PUT", "/v1/budgets", json=body), BudgetState)

    def approvals(self) -> list[Approval]:
        return _decode_list(self._request("GET", "/v1/approvals"), _APPROVALS)

    def decide(self, approval_id: str, decision: ApprovalDecision) -> Approval:
        response = self._request(
            "POST", f"/v1/approvals/{approval_id}", json=decision.model_dump()
        )
        return _decode(response, Approval)

    def push_policy(self, bundle: PolicyBundle) -> PolicyState:
        return _decode(self._request("PUT", "/v1/policy", json=bundle.model_dump()), PolicyState)

    def metrics(self) -> str:
        response = self._request("GET", "/metrics")
        if response.is_error:
            raise _error_from(response)
        return response.text

    def events(self, last_event_id: int | None = None) -> Iterator[Event]:
        """Follow the SSE stream until the server closes it (no reconnect here)."""
        headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
        try:
            with connect_sse(
                self._http, "GET", "/v1/events", headers=headers, timeout=httpx.Timeout(None)
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
            base_url=self.base_url, headers=_headers(token), timeout=timeout
        )

    async def __aenter__(self) -> AsyncAgentClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise EndpointError(f"{self.base_url} unreachable: {exc}") from exc

    async def health(self) -> Health:
        return _decode(await self._request("GET", "/v1/health"), Health)

    async def agent(self) -> AgentInfo:
        return _decode(await self._request("GET", "/v1/agent"), AgentInfo)

    async def sessions(self) -> list[SessionSummary]:
        return _decode_list(await self._request("GET", "/v1/sessions"), _SESSIONS)

    async def session(self, session_id: str) -> SessionDetail:
        return _decode(await self._request("GET", f"/v1/sessions/{session_id}"), SessionDetail)

    async def kill(self, session_id: str, operator: str, reason: str = "") -> SessionSummary:
        response = await self._request(
            "POST", f"/v1/sessions/{session_id}/kill", json=_control(operator, reason)
        )
        return _decode(response, SessionSummary)

    async def disable(self, workflow: str, operator: str, reason: str = "") -> WorkflowState:
        response = await self._request(
            "POST", f"/v1/workflows/{workflow}/disable", json=_control(operator, reason)
        )
        return _decode(response, WorkflowState)

    async def enable(self, workflow: str, operator: str, reason: str = "") -> WorkflowState:
        response = await self._request(
            "POST", f"/v1/workflows/{workflow}/enable", json=_control(operator, reason)
        )
        return _decode(response, WorkflowState)

    async def set_budgets(self, update: BudgetUpdate) -> BudgetState:
        body = update.model_dump(include={"scope", "operator", "reason", *update.changes()})
        return _decode(await self._request("PUT", "/v1/budgets", json=body), BudgetState)

    async def approvals(self) -> list[Approval]:
        return _decode_list(await self._request("GET", "/v1/approvals"), _APPROVALS)

    async def decide(self, approval_id: str, decision: ApprovalDecision) -> Approval:
        response = await self._request(
            "POST", f"/v1/approvals/{approval_id}", json=decision.model_dump()
        )
        return _decode(response, Approval)

    async def push_policy(self, bundle: PolicyBundle) -> PolicyState:
        response = await self._request("PUT", "/v1/policy", json=bundle.model_dump())
        return _decode(response, PolicyState)

    async def events(self, last_event_id: int | None = None) -> AsyncIterator[Event]:
        """Follow the SSE stream until the server closes it; callers own reconnecting."""
        headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
        try:
            async with aconnect_sse(
                self._http, "GET", "/v1/events", headers=headers, timeout=httpx.Timeout(None)
            ) as source:
                if source.response.is_error:
                    await source.response.aread()
                    raise _error_from(source.response)
                async for sse in source.aiter_sse():
                    event = parse_event(sse)
                    if event is not None:
                        yield event
        except httpx.HTTPError as exc:
            raise EndpointError(f"{self.base_url} stream failed: {exc}") from exc
