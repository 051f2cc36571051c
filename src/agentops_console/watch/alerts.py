"""From the event stream to alerts worth an incident: one pure, synchronous detector.

Causes (docs/watch.md, "The watcher"): a runaway loop and an exceeded budget (their flags),
a cross-tenant export attempt (a denied tool call whose `tenant` argument is not the
session's tenant, or a denial naming a cross-tenant policy), a burst of policy denials (N
within T seconds in one session or one workflow) and an agent unreachable for N seconds
(the service measures that; `unreachable()` only builds the alert). Each alert carries its
dedup key (agent, cause, and the session or workflow it is about) and the flag's own time.
The denied call's arguments are not on the flag: `arguments_needed` says which span's the
caller should fetch (from the session's detail: denials are rare, spans are not, so the
watcher does not follow span events to remember them).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from ..protocol.models import Event

Cause = Literal[
    "runaway_loop", "budget_exceeded", "policy_denied", "cross_tenant_export", "agent_unreachable"
]
CAUSES: tuple[str, ...] = Cause.__args__  # type: ignore[attr-defined]
_ALL_CAUSES: tuple[Cause, ...] = Cause.__args__  # type: ignore[attr-defined]
#: Runbook triggers tried first for each cause (then the cause itself).
RUNBOOK_TRIGGERS: dict[str, tuple[str, ...]] = {
    "cross_tenant_export": ("policy_denied",),
    "agent_unreachable": ("unreachable",),
}
_WINDOWS_KEPT = 10_000


class IncidentPolicy(BaseModel):
    """`[incidents]` in watch.toml: which causes open incidents, and how often."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: After an incident for a cause (agent + cause + session or workflow), the same cause
    #: opens no new one for this long.
    cooldown_s: Annotated[float, Field(ge=0, le=7 * 86400)] = 900.0
    #: Policy denials within `denial_window_s` in one session or one workflow that make a burst.
    denials: Annotated[int, Field(ge=1, le=10_000)] = 3
    denial_window_s: Annotated[float, Field(gt=0, le=86400)] = 60.0
    #: An agent that cannot be reached for this long is an incident (resolved when it is back).
    unreachable_s: Annotated[float, Field(gt=0, le=86400)] = 60.0
    causes: list[Cause] = Field(default_factory=lambda: list(_ALL_CAUSES))


@dataclass(frozen=True, slots=True)
class Alert:
    agent: str
    cause: str
    scope: str  # "session:<id>", "workflow:<name>" or "agent"
    summary: str
    detected_at: datetime  # the flag's own time
    started_at: datetime | None = None
    session_id: str | None = None
    workflow: str | None = None
    event_seq: int | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.agent, self.cause, self.scope)


@dataclass(slots=True)
class AlertDetector:
    """Turns events into alerts; remembers recent denials (for bursts), bounded."""

    policy: IncidentPolicy = field(default_factory=IncidentPolicy)
    _denials: OrderedDict[tuple[str, str], deque[datetime]] = field(default_factory=OrderedDict)

    def arguments_needed(self, event: Event) -> tuple[str, str] | None:
        """(session id, span id) of the call whose arguments `observe` needs to judge this
        event: a policy denial that may be a cross-tenant export; None for any other."""
        flag = event.flag
        if flag is None or not is_denial(event):
            return None
        session = event.session
        session_id = event.session_id or (session.id if session else None)
        if (
            "cross_tenant_export" not in self.policy.causes
            or not session_id
            or not flag.span_id
            or session is None
            or session.tenant is None
            or _cross_tenant(flag.message, None, None)  # the message alone says so
        ):
            return None
        return session_id, flag.span_id

    def observe(self, agent: str, event: Event, arguments: JsonValue = None) -> list[Alert]:
        """The alerts `event` raises; `arguments` are the denied call's, when
        `arguments_needed` asked for them."""
        flag = event.flag
        if event.type != "flag" or flag is None:
            return []
        session = event.session
        session_id = event.session_id or (session.id if session else None)
        workflow = event.workflow or (session.workflow if session else None)

        def alert(cause: str, scope: str, summary: str) -> Alert:
            return Alert(
                agent=agent,
                cause=cause,
                scope=scope,
                summary=summary,
                detected_at=flag.at,
                started_at=session.started_at if session else None,
                session_id=session_id,
                workflow=workflow,
                event_seq=event.seq,
            )

        wanted = self.policy.causes
        if flag.kind in ("runaway_loop", "budget_exceeded"):
            if flag.kind not in wanted:
                return []
            return [alert(flag.kind, f"session:{session_id}", flag.message)]
        if flag.kind != "policy_denied":
            return []
        tenant = session.tenant if session else None
        if "cross_tenant_export" in wanted and _cross_tenant(flag.message, arguments, tenant):
            return [
                alert(
                    "cross_tenant_export",
                    f"workflow:{workflow}",
                    f"cross-tenant export attempt: {flag.message}",
                )
            ]
        if "policy_denied" not in wanted:
            return []
        alerts = []
        for scope in (f"session:{session_id}", f"workflow:{workflow}"):
            count = self._count_denial(agent, scope, flag.at)
            if count == self.policy.denials:
                where = scope.replace(":", " ", 1)
                summary = (
                    f"{count} policy denials within {self.policy.denial_window_s:g} s in"
                    f" {where}; last: {flag.message}"
                )
                alerts.append(alert("policy_denied", scope, summary))
        return alerts[:1]  # a burst in a session is also one in its workflow: one alert

    def unreachable(self, agent: str, since: datetime, now: datetime, error: str) -> Alert:
        seconds = (now - since).total_seconds()
        return Alert(
            agent=agent,
            cause="agent_unreachable",
            scope="agent",
            summary=f"{agent} unreachable for {seconds:.0f} s: {error}"[:500],
            detected_at=now,
            started_at=since,
        )

    def _count_denial(self, agent: str, scope: str, at: datetime) -> int:
        key = (agent, scope)
        times = self._denials.get(key)
        if times is None:
            times = self._denials[key] = deque(maxlen=self.policy.denials)
            while len(self._denials) > _WINDOWS_KEPT:
                self._denials.popitem(last=False)
        times.append(at)
        window = timedelta(seconds=self.policy.denial_window_s)
        return sum(1 for t in times if at - t <= window)


def is_denial(event: Event) -> bool:
    """A policy denial flag: what the burst windows count (and the cross-tenant check
    judges), so the watcher hands these to `observe` in stream order."""
    return event.type == "flag" and event.flag is not None and event.flag.kind == "policy_denied"


def _cross_tenant(message: str, arguments: JsonValue, tenant: str | None) -> bool:
    text = message.lower()
    if "cross-tenant" in text or "cross_tenant" in text:
        return True
    if not isinstance(arguments, dict):
        return False
    target = arguments.get("tenant")
    return isinstance(target, str) and tenant is not None and target != tenant
