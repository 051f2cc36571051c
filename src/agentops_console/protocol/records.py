"""`agentops.record/1`: one finished (or in-flight) session with its spans, as stored and exported.

The record is what outlives the agent's in-memory ring: the records store keeps it, `agentops
sessions export` writes it as JSON Lines, and evaluation replay reads it back. It carries the
audit fields an incident review asks for (who, what tool, which policy decision, who
overrode it, latency, tokens, cost, final outcome) and what replay needs (arguments, tool
outputs, task input and answer). It lives in `protocol` so the runtime can emit it later:
pydantic and the standard library only.

Agents report the outcome, input and output (`s.outcome()`, `s.input()`, `s.output()`) and
the runtime keeps each span's approval id; a record of an older agent that does not still
gets a derived outcome and the approval matched by tool and arguments (see `build_record`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue, ValidationError

from . import models
from .models import (
    AgentInfo,
    Approval,
    Budgets,
    Decision,
    Flag,
    KillInfo,
    Outcome,
    SessionDetail,
    SessionStatus,
    SpanKind,
    SpanOutcome,
)
from .text import validation_line

RECORD_FORMAT: Literal["agentops.record/1"] = "agentops.record/1"

#: The outcomes a record holds (defined beside the wire models, which carry them too).
OUTCOMES: tuple[str, ...] = models.OUTCOMES
OverrideDecision = Literal["approved", "denied", "expired"]

#: Session statuses after which nothing more will happen to the session.
FINAL_STATUSES = frozenset({"completed", "failed", "killed", "stopped"})


class RecordFormatError(ValueError):
    """A record that cannot be read; the message is one line naming the file and line."""


class _Record(BaseModel):
    # Unknown fields are ignored so a reader of /1 keeps reading files a newer writer of /1
    # added optional fields to; a different `format` is refused instead.
    model_config = ConfigDict(extra="ignore")


class HumanOverride(_Record):
    """A human checkpoint on a tool call: who answered, how, and when."""

    decision: OverrideDecision
    by: str | None = None
    at: AwareDatetime | None = None
    reason: str | None = None
    approval_id: str | None = None


class SpanRecord(_Record):
    span_id: str
    parent_span_id: str | None = None
    #: The trace of the caller that started this work (another agent or service), when known.
    parent_trace_id: str | None = None
    kind: SpanKind
    name: str
    loop: int = 0
    started_at: AwareDatetime
    ended_at: AwareDatetime | None = None
    tool_name: str | None = None
    tool_version: str | None = None
    arguments: JsonValue = None
    tool_output: JsonValue = None
    policy_decision: Decision | None = None
    policy_reason: str | None = None
    policy_version: str | None = None
    human_override: HumanOverride | None = None
    latency_ms: float | None = None
    token_in: int = 0
    token_out: int = 0
    estimated_cost_usd: float = 0.0
    model: str | None = None
    provider: str | None = None
    outcome: SpanOutcome = "running"
    error: str | None = None
    confidence: float | None = None
    attributes: dict[str, JsonValue] = Field(default_factory=dict)


class Counters(_Record):
    loops: int = 0
    tool_calls: int = 0
    consecutive_tool_calls: int = 0
    retries: int = 0
    unauthorized_attempts: int = 0


class SessionRecord(_Record):
    format: Literal["agentops.record/1"] = RECORD_FORMAT
    agent: str
    agent_version: str
    tenant: str | None = None
    workflow: str
    principal: str
    session_id: str
    trace_id: str | None = None
    started_at: AwareDatetime
    ended_at: AwareDatetime | None = None
    last_event_at: AwareDatetime
    status: SessionStatus
    final_outcome: Outcome = "unknown"
    outcome_reason: str | None = None
    input: str | None = None
    output: str | None = None
    counters: Counters = Field(default_factory=Counters)
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    loop_cost_usd: float = 0.0
    budget: Budgets = Field(default_factory=Budgets)
    flags: list[Flag] = Field(default_factory=list)
    killed: KillInfo | None = None
    policy_version: str | None = None
    source: Literal["api", "otel"] = "api"
    spans: list[SpanRecord] = Field(default_factory=list)

    @property
    def final(self) -> bool:
        """The session has ended: no later copy will add to it."""
        return self.status in FINAL_STATUSES

    def completeness(self) -> tuple[int, datetime, int]:
        """Orders copies of one session: ended beats running, then newer, then more spans."""
        return (int(self.final), self.last_event_at, len(self.spans))


def default_outcome(status: SessionStatus) -> Outcome:
    """The outcome of a session whose agent reported none.

    Only the agent knows whether the task was resolved, so a normal end is `unknown`. A
    crash (`failed`) and a session the guard or an operator had to stop (`killed`, or
    `stopped` by a budget or a disabled workflow) are `failed`: the task was not done, and
    for replay and canary comparison a stopped session must count against the version.
    A session still running has no outcome yet (`unknown`).
    """
    return "failed" if status in ("failed", "killed", "stopped") else "unknown"


#: Span policy decisions and approval statuses that mean a human checkpoint was closed (also
#: read by the watcher's JSON path, records/wire_rows.py).
ANSWERED: dict[str, OverrideDecision] = {
    "approved": "approved",
    "rejected": "denied",
    "denied": "denied",
    "expired": "expired",
}

#: A wire object (a decoded `SessionDetail` or `Span`, or a model's `model_dump()`): a dict,
#: checked with `isinstance(x, dict)` (the Mapping ABC's check was a tenth of the build).
Wire = dict[str, Any]


def _object(value: Any, where: str) -> Wire:
    if not isinstance(value, dict):
        raise ValueError(f"{where}: not an object")
    return value


def _texts(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where}: not a list of strings")
    return value


def _approval_for(
    span: Wire, policy: Wire, approvals: list[Approval], used: set[str]
) -> Approval | None:
    """The checkpoint behind a span: by id, else (the runtime re-evaluates after an approval
    and keeps no id) the first unused answered one for the same session, tool and arguments."""
    approval_id = policy.get("approval_id")
    for approval in approvals:
        if approval.id in used or approval.status == "pending":
            continue
        if approval_id is not None:
            if approval.id == approval_id:
                return approval
        elif (
            approval.session_id == span.get("session_id")
            and approval.tool == span.get("tool")
            and approval.arguments == span.get("arguments")
        ):
            return approval
    return None


def _override(
    span: Wire, policy: Wire | None, approvals: list[Approval], used: set[str]
) -> dict[str, Any] | None:
    if policy is None:
        return None
    decision = policy.get("decision")
    if not isinstance(decision, str):
        decision = None  # not a decision (a list is not even hashable): the record refuses it
    approval_id = policy.get("approval_id")
    if approval_id is None and decision not in ANSWERED:
        return None
    approval = _approval_for(span, policy, approvals, used)
    if approval is not None:
        used.add(approval.id)
        return {
            "decision": ANSWERED.get(approval.status, "denied"),
            "by": approval.decided_by,
            "at": approval.decided_at,
            "reason": approval.decision_reason,
            "approval_id": approval.id,
        }
    if decision in ANSWERED:  # answered, by whom unknown
        return {"decision": ANSWERED[decision], "approval_id": approval_id}
    return None


def _policy_reason(span: Wire, policy: Wire | None) -> str | None:
    if policy is None:
        return None
    parts = _texts(policy.get("reasons", []), "policy.reasons") + _texts(
        policy.get("errors", []), "policy.errors"
    )
    error = span.get("error")
    if not parts and span.get("outcome") == "denied" and error:
        parts.append(error)
    return "; ".join(parts) or None


#: Record span fields copied as they are from a wire `Span` (record field -> wire key); the
#: rest (`span_computed`) are worked out. One table for both ways of building a record: this
#: module's, and the watcher's fast path (records/wire_rows.py), which validates the wire
#: keys directly under these names.
SPAN_FROM_WIRE: dict[str, str] = {
    "span_id": "id",
    "parent_span_id": "parent_id",
    "kind": "kind",
    "name": "name",
    "loop": "loop",
    "started_at": "started_at",
    "ended_at": "ended_at",
    "tool_name": "tool",
    "tool_version": "tool_version",
    "arguments": "arguments",
    "tool_output": "output",
    "latency_ms": "latency_ms",
    "token_in": "tokens_in",
    "token_out": "tokens_out",
    "estimated_cost_usd": "cost_usd",
    "model": "model",
    "provider": "provider",
    "outcome": "outcome",
    "error": "error",
    "confidence": "confidence",
    "attributes": "attributes",
}
#: Record session fields copied as they are from a wire `SessionDetail`.
SESSION_FROM_WIRE: dict[str, str] = {
    "agent": "agent",
    "workflow": "workflow",
    "principal": "principal",
    "session_id": "id",
    "started_at": "started_at",
    "ended_at": "ended_at",
    "last_event_at": "last_event_at",
    "status": "status",
    "outcome_reason": "outcome_reason",
    "input": "input",
    "output": "output",
    "tokens_in": "tokens_in",
    "tokens_out": "tokens_out",
    "cost_usd": "cost_usd",
    "loop_cost_usd": "loop_cost_usd",
    "budget": "budget",
    "flags": "flags",
    "killed": "killed",
    "source": "source",
}
#: The session counters a wire `SessionDetail` holds at its top level.
COUNTERS = ("loops", "tool_calls", "consecutive_tool_calls", "retries", "unauthorized_attempts")


def span_computed(span: Wire, approvals: list[Approval], used: set[str]) -> dict[str, Any]:
    """The `SpanRecord` fields a wire `Span` does not hold as they are."""
    policy = span.get("policy")
    if policy is not None:
        policy = _object(policy, "span.policy")
    attributes = _object(span.get("attributes", {}), "span.attributes")
    parent_trace = attributes.get("agentops.parent_trace_id")
    if policy is None:
        decision = version = reason = override = None
    else:
        decision = policy.get("decision")
        version = policy.get("policy_version")
        reason = _policy_reason(span, policy)
        override = _override(span, policy, approvals, used)
    return {
        "parent_trace_id": parent_trace if isinstance(parent_trace, str) else None,
        "policy_decision": decision,
        "policy_reason": reason,
        "policy_version": version,
        "human_override": override,
    }


def _span_data(span: Wire, computed: dict[str, Any]) -> dict[str, Any]:
    """A `SpanRecord`'s fields from a wire `Span` and its `span_computed` ones (validated
    later, once, as the record); a key the span lacks is left out: the record's default
    applies."""
    data = {field: span[key] for field, key in SPAN_FROM_WIRE.items() if key in span}
    data["attributes"] = dict(data.get("attributes", {}))
    data.update(computed)
    return data


def wire_spans(detail: Wire) -> list[Wire]:
    """The detail's spans, each a JSON object (ValueError otherwise)."""
    raw_spans = detail.get("spans", [])
    if not isinstance(raw_spans, list):
        raise ValueError("spans: not a list")
    return [_object(s, "span") for s in raw_spans]


def session_computed(
    detail: Wire, agent: AgentInfo, spans: list[Wire], versions: list[Any]
) -> dict[str, Any]:
    """The `SessionRecord` fields a wire `SessionDetail` does not hold as they are
    (`versions`: the spans' policy versions, in order)."""
    tenant = detail.get("tenant")
    status: Any = detail.get("status")
    return {
        "agent_version": agent.version,
        "tenant": tenant if tenant is not None else agent.tenant,
        "trace_id": _trace_id(detail, spans),
        "final_outcome": detail.get("outcome") or default_outcome(status),
        "counters": {key: detail[key] for key in COUNTERS if key in detail},
        "policy_version": next((v for v in reversed(versions) if v), agent.policy.version),
    }


def _trace_id(detail: Wire, spans: list[Wire]) -> Any:
    """The session's trace (OTel sessions, API sessions exported over OTel); an older agent
    that does not report it keeps it on the spans that came in over OpenTelemetry."""
    trace_id = detail.get("trace_id")
    if trace_id is not None:
        return trace_id
    for span in spans:
        value = span.get("attributes", {}).get("otel.trace_id")
        if isinstance(value, str):
            return value
    return None


def computed_fields(
    detail: Wire, agent: AgentInfo, approvals: Iterable[Approval] = ()
) -> tuple[list[tuple[Wire, dict[str, Any]]], dict[str, Any]]:
    """The record fields a wire `SessionDetail` does not hold as they are: each wire span
    with its `span_computed` fields, and the session's `session_computed` ones. Shared by
    `record_data` and the watcher's fast path (records/wire_rows.py). ValueError when a
    part the record would not check has the wrong shape."""
    session_id = detail.get("id")
    known = [a for a in approvals if a.session_id == session_id]
    used: set[str] = set()
    wire = wire_spans(detail)
    spans = [(span, span_computed(span, known, used)) for span in wire]
    versions = [computed["policy_version"] for _, computed in spans]
    return spans, session_computed(detail, agent, wire, versions)


def record_data(
    detail: Wire, agent: AgentInfo, approvals: Iterable[Approval] = ()
) -> dict[str, Any]:
    """A record's fields from a `SessionDetail` as the endpoint serves it (decoded JSON, or a
    model's `model_dump()`), not yet validated: `record_from_wire` validates it once, as the
    record. A value of the wrong shape that the record would not check is a ValueError."""
    spans, session = computed_fields(detail, agent, approvals)
    data = {field: detail[key] for field, key in SESSION_FROM_WIRE.items() if key in detail}
    data.update(session)
    data["spans"] = [_span_data(span, computed) for span, computed in spans]
    return data


def record_from_wire(
    detail: Wire, agent: AgentInfo, approvals: Iterable[Approval] = ()
) -> SessionRecord:
    """A record from a decoded `SessionDetail`, validated once (ValueError when it does not
    fit: pydantic's ValidationError is one). The watcher builds its records this way from
    `GET /v1/session-details`: validating each span as a wire model and then again as a
    record cost twice as much for the same check.

    `detail` must be decoded JSON or a model's dump: the spans' arguments, outputs and
    attributes are then JSON values by construction, and are set on the validated record
    instead of being walked again (pydantic checks a JsonValue with a Python callback per
    value: it was a third of a record's cost). Everything else is validated."""
    data = record_data(detail, agent, approvals)
    payloads = [
        (s.pop("arguments", None), s.pop("tool_output", None), s.pop("attributes"))
        for s in data["spans"]
    ]
    record = SessionRecord.model_validate(data)
    for span, (arguments, output, attributes) in zip(record.spans, payloads, strict=True):
        # straight into the instance dict: pydantic's __setattr__ cost more than the walk
        span.__dict__.update(arguments=arguments, tool_output=output, attributes=attributes)
    return record


def build_record(
    detail: SessionDetail, agent: AgentInfo, approvals: Iterable[Approval] = ()
) -> SessionRecord:
    """A record from what the endpoint serves (`GET /v1/sessions/{id}` and `/v1/agent`).

    `approvals` (from `approval_resolved` events, for instance) name who answered each human
    checkpoint; without them an answered checkpoint still shows its decision, with `by`
    unknown. The policy version is the one the session's last decision used, else the
    agent's current one. An agent that reports no approval ids on its spans gets each
    checkpoint matched by session, tool and arguments.
    """
    return record_from_wire(detail.model_dump(), agent, approvals)


# -- JSON Lines ----------------------------------------------------------------------------
def dumps(record: SessionRecord) -> str:
    """One record as one line of JSON (no newline)."""
    return record.model_dump_json()


def write_jsonl(records: Iterable[SessionRecord], out: IO[str]) -> int:
    """Write one record per line; returns how many."""
    count = 0
    for record in records:
        out.write(dumps(record) + "\n")
        count += 1
    return count


def parse_line(line: str, where: str) -> SessionRecord:
    """One line of JSON Lines; `where` ("file:line") starts any error message."""
    try:
        data: Any = json.loads(line)
    except json.JSONDecodeError as exc:
        raise RecordFormatError(f"{where}: not JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(data, dict):
        raise RecordFormatError(f"{where}: not an {RECORD_FORMAT} record (a JSON object)")
    found = data.get("format")
    if found != RECORD_FORMAT:
        what = "no format field" if found is None else f"format {str(found)[:60]!r}"
        raise RecordFormatError(f"{where}: not an {RECORD_FORMAT} record ({what})")
    try:
        return SessionRecord.model_validate(data)
    except ValidationError as exc:
        raise RecordFormatError(f"{where}: {validation_line(exc, 'record')}") from None


def read_jsonl(source: IO[str], name: str) -> Iterator[SessionRecord]:
    """Records from an open text stream; blank lines are skipped."""
    for number, line in enumerate(source, 1):
        if line.strip():
            yield parse_line(line, f"{name}:{number}")


def load_jsonl(path: Path | str) -> Iterator[SessionRecord]:
    """Records from a file; an unreadable file is a RecordFormatError too (one line)."""
    target = Path(path)
    try:
        handle = target.open(encoding="utf-8")
    except OSError as exc:
        raise RecordFormatError(f"{target}: cannot read: {exc.strerror or exc}") from None
    with handle:
        try:
            yield from read_jsonl(handle, str(target))
        except UnicodeDecodeError:
            raise RecordFormatError(f"{target}: not UTF-8 text") from None
