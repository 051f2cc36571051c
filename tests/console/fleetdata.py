"""Deterministic fleet data for console tests: protocol objects with fixed ids and times.

Snapshot tests and store tests feed the console exactly what an agent would send
(AgentInfo, SessionSummary, Event), built here so every rendered value is reproducible.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from agentops_console.protocol.models import (
    AgentInfo,
    Approval,
    Budgets,
    Event,
    Flag,
    PolicyState,
    SessionSummary,
    Span,
    WorkflowState,
)

T0 = datetime(2025, 3, 14, 9, 26, 0, tzinfo=UTC)
NOW = T0 + timedelta(minutes=5)
EVIL = "[bold red]pwn[/] [link=http://x]click[/link] \x1b[31mred\x1b[0m"


def fixed_clock() -> datetime:
    return NOW


def agent_info(name: str = "it-support", seq: int = 0, **kw: Any) -> AgentInfo:
    data: dict[str, Any] = {
        "agent": name,
        "version": "1.4.0",
        "tenant": "acme",
        "workflows": ["password-reset", "vpn-help"],
        "policy": PolicyState(version="1.4.0", sha256="ab" * 32, loaded_at=T0, policies=7),
        "budgets": Budgets(max_cost_usd_session=2.0, max_tool_calls=60),
        "started_at": T0,
        "last_event_seq": seq,
    }
    data.update(kw)
    return AgentInfo(**data)


def summary(
    session_id: str,
    agent: str = "it-support",
    *,
    workflow: str = "password-reset",
    principal: str = "user-1042",
    minute: int = 0,
    **kw: Any,
) -> SessionSummary:
    data: dict[str, Any] = {
        "id": session_id,
        "agent": agent,
        "workflow": workflow,
        "principal": principal,
        "tenant": "acme",
        "status": "running",
        "started_at": T0 + timedelta(minutes=minute),
        "last_event_at": T0 + timedelta(minutes=minute, seconds=30),
        "loops": 2,
        "tool_calls": 3,
        "tokens_in": 2400,
        "tokens_out": 600,
        "cost_usd": 0.0123,
        "budget": Budgets(max_cost_usd_session=2.0),
    }
    data.update(kw)
    return SessionSummary(**data)


def flag(kind: str = "runaway_loop", second: int = 40, **kw: Any) -> Flag:
    data: dict[str, Any] = {
        "kind": kind,
        "severity": "critical" if kind in ("runaway_loop", "budget_exceeded") else "warning",
        "at": T0 + timedelta(minutes=1, seconds=second),
        "message": f"{kind} detected",
    }
    data.update(kw)
    return Flag(**data)


def event(seq: int, type: str, **kw: Any) -> Event:
    return Event(seq=seq, type=type, at=T0 + timedelta(seconds=seq), **kw)


def approval(approval_id: str = "ap-1", session_id: str = "s-0003", **kw: Any) -> Approval:
    data: dict[str, Any] = {
        "id": approval_id,
        "session_id": session_id,
        "workflow": "password-reset",
        "principal": "user-1042",
        "tool": "reset_password",
        "arguments": {"user": "jdoe", "notify": True},
        "reason": "policy identity-change-needs-human-approval",
        "requested_at": T0 + timedelta(minutes=2),
        "expires_at": T0 + timedelta(minutes=7),
    }
    data.update(kw)
    return Approval(**data)


def spans(session_id: str) -> list[Span]:
    base = T0 + timedelta(minutes=1)
    return [
        Span(
            id="1",
            session_id=session_id,
            kind="llm",
            name="chat gpt-4o-mini",
            loop=1,
            started_at=base,
            ended_at=base + timedelta(milliseconds=850),
            latency_ms=850,
            outcome="ok",
            principal="user-1042",
            model="gpt-4o-mini",
            tokens_in=1200,
            tokens_out=300,
            cost_usd=0.00036,
        ),
        Span(
            id="2",
            session_id=session_id,
            kind="tool",
            name="kb_search",
            loop=1,
            started_at=base + timedelta(seconds=1),
            ended_at=base + timedelta(seconds=1, milliseconds=120),
            latency_ms=120,
            outcome="ok",
            principal="user-1042",
            tool="kb_search",
            arguments={"query": EVIL},
            output={"hits": 3},
            policy={"decision": "allow", "policy_version": "1.4.0"},
        ),
        Span(
            id="3",
            session_id=session_id,
            kind="tool",
            name="reset_password",
            loop=2,
            started_at=base + timedelta(seconds=3),
            ended_at=base + timedelta(seconds=3, milliseconds=15),
            latency_ms=15,
            outcome="denied",
            principal="user-1042",
            tool="reset_password",
            arguments={"user": "jdoe"},
            policy={
                "decision": "deny",
                "reasons": ["identity-change-needs-human-approval"],
                "policy_version": "1.4.0",
            },
        ),
    ]


def disabled(workflow: str) -> WorkflowState:
    return WorkflowState(workflow=workflow, disabled=True, operator="alice", reason="drill", at=T0)
