"""A session's detail as wire JSON without building the pydantic models.

The watcher reads every finished session through GET /v1/session-details, and the agent
serves it on its own CPU, beside the agent's work: building `SessionDetail` (one validated
`Span` per span) and dumping it was ~460 µs a session. Here the same JSON comes from plain
values: the summary fields, the loop costs and the split by hand, each span by the event
stream's own wire builder (`sse._span_wire`, so there is one span serializer). Any value
the model would coerce, refuse or serialise differently (a str subclass, NaN, an unknown
status, a value out of a budget's bounds, a text that cannot be encoded) sends the whole
session down the model path, so the answer is the model's either way.
"""

from __future__ import annotations

from datetime import datetime
from math import isfinite
from typing import TYPE_CHECKING, Any, get_args

from pydantic_core import to_json

from ..protocol.models import (
    FLAG_KINDS,
    MAX_BUDGET_COUNT,
    MAX_BUDGET_USD,
    OUTCOMES,
    Flag,
    SessionStatus,
    Severity,
)
from .spans import SpanRecord, utc
from .sse import _num, _opt_str, _span_wire, _split_wire, _str, span_json

if TYPE_CHECKING:
    from .session import Session

__all__ = ["detail_json"]

_STATUSES = frozenset(get_args(SessionStatus))
_SEVERITIES = frozenset(get_args(Severity))
_FLAG_KINDS = frozenset(FLAG_KINDS)
_OUTCOMES = frozenset(OUTCOMES)
_SOURCES = frozenset(("api", "otel"))
_USD_LIMITS = ("max_cost_usd_session", "max_cost_usd_loop")
_COUNT_LIMITS = ("max_tool_calls", "max_consecutive_tool_calls", "max_output_tokens")


def detail_json(session: Session) -> bytes:
    """`session.detail().model_dump_json(exclude_none=True)`, built from plain values; the
    model path when anything is not exactly what the model would hold (or raises there,
    so an error is the model's error too)."""
    try:
        fast = _detail_bytes(session)
    except Exception:
        fast = None
    if fast is not None:
        return fast
    return session.detail().model_dump_json(exclude_none=True).encode()


def _time(value: Any) -> Any:
    """A timestamp as the model's datetime (to_json writes it as the model does)."""
    if type(value) is not float and type(value) is not int:
        raise TypeError("not a timestamp")
    return utc(value)


def _int(value: Any) -> int:
    if type(value) is not int:
        raise TypeError("not an int")
    return value


def _float(value: Any) -> float:
    number = _num(value)
    if number is None:
        raise TypeError("not a finite float")
    return number


def _text(value: Any) -> str:
    if not _str(value):
        raise TypeError("not a str")
    return value  # type: ignore[no-any-return]


def _detail_bytes(session: Session) -> bytes | None:
    """The detail's JSON in SessionDetail's field order, None left out; TypeError (caught
    by the caller) for any value the model path must decide."""
    usage = session.usage_split
    spans = list(session.spans)
    wire: dict[str, Any] = {
        "id": _text(session.id),
        "agent": _text(session.runtime.agent_name),
        "workflow": _text(session.workflow),
        "principal": _text(session.principal),
    }
    if session.tenant is not None:
        wire["tenant"] = _text(session.tenant)
    if session.status not in _STATUSES:
        return None
    wire["status"] = session.status
    wire["started_at"] = _time(session.started)
    wire["last_event_at"] = _time(session.last_event)
    if session.ended is not None:
        wire["ended_at"] = _time(session.ended)
    wire["loops"] = _int(session.loop)
    wire["tool_calls"] = _int(session.tool_calls)
    wire["consecutive_tool_calls"] = _int(session.consecutive_tool_calls)
    wire["retries"] = _int(session.retries)
    wire["unauthorized_attempts"] = _int(session.unauthorized_attempts)
    wire["tokens_in"] = _int(session.tokens_in)
    wire["tokens_out"] = _int(session.tokens_out)
    wire["cost_usd"] = _float(round(_float(session.cost_usd), 9))
    wire["loop_cost_usd"] = _float(round(_float(session.loop_cost_usd), 9))
    wire["budget"] = _budget_wire(session)
    wire["flags"] = [_flag_wire(flag) for flag in list(session.flags)]
    killed = session.killed
    if killed is not None:
        wire["killed"] = {
            "operator": _text(killed.operator),
            "reason": _text(killed.reason),
            "at": _moment(killed.at),
        }
    if session.source not in _SOURCES:
        return None
    wire["source"] = session.source
    if session.outcome_value is not None:
        if session.outcome_value not in _OUTCOMES:
            return None
        wire["outcome"] = session.outcome_value
    span_wires = [_span_wire(span) if type(span) is SpanRecord else None for span in spans]
    wire["spans"] = span_wires
    wire["loop_costs"] = [_loop_cost_wire(cost) for cost in session.loop_costs]
    if session.outcome_reason is not None:
        wire["outcome_reason"] = _text(session.outcome_reason)
    wire["tokens_cache_read"] = _int(usage.cache_read)
    wire["tokens_cache_write"] = _int(usage.cache_write)
    wire["tokens_reasoning"] = _int(usage.reasoning)
    if usage.priced:
        split = _split_wire(usage.cost)  # the spans' own: the same rounding, the same checks
        if split is None:
            return None
        wire["cost_split"] = split
    for name, text in (
        ("input", session.input_text),
        ("output", session.output_text),
        ("trace_id", session.trace_id),
    ):
        if text is not None:
            wire[name] = _text(text)
    if None not in span_wires:
        return to_json(wire)
    # a span the model path must render: splice each span's own bytes (the same bytes the
    # model gives for it inside the detail, see sse.span_json)
    wire["spans"] = []
    head, tail = to_json(wire).split(b'"spans":[]', 1)
    return head + b'"spans":[' + b",".join(span_json(s) for s in spans) + b"]" + tail


def _loop_cost_wire(cost: Any) -> dict[str, Any]:
    """One LoopCost as the model dumps it; checks inline (a session has one per loop)."""
    usd = cost.cost_usd
    if type(usd) is not float or not isfinite(usd):
        usd = _float(usd)  # an int widens; anything else raises
    loop = cost.loop
    tokens_in = cost.tokens_in
    tokens_out = cost.tokens_out
    tool_calls = cost.tool_calls
    if not (
        type(loop) is int
        and type(tokens_in) is int
        and type(tokens_out) is int
        and type(tool_calls) is int
    ):
        raise TypeError("not an int")
    return {
        "loop": loop,
        "cost_usd": round(usd, 9),  # a finite float rounds to a finite float
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
        "tool_calls": tool_calls,
    }


def _moment(value: Any) -> Any:
    """A datetime a model already holds: written as it is, if it is exactly a datetime."""
    if type(value) is not datetime or value.tzinfo is None:
        raise TypeError("not an aware datetime")
    return value


def _budget_wire(session: Session) -> dict[str, Any]:
    """`Limits.to_budgets()` as the model dumps it: set limits only, in field order; a
    value the Budgets model would refuse or convert goes to the model path."""
    limits = session.limits()
    wire: dict[str, Any] = {}
    for name in _USD_LIMITS:
        value = getattr(limits, name)
        if value is not None:
            number = _float(value)
            if not 0 <= number <= MAX_BUDGET_USD:
                raise TypeError("budget out of bounds")
            wire[name] = number
    for name in _COUNT_LIMITS:
        value = getattr(limits, name)
        if value is not None:
            if not 0 <= _int(value) <= MAX_BUDGET_COUNT:
                raise TypeError("budget out of bounds")
            wire[name] = value
    return wire  # Budgets' field order: the two USD limits, then the three counts


def _flag_wire(flag: Any) -> dict[str, Any]:
    if type(flag) is not Flag:
        raise TypeError("not a Flag")
    if flag.kind not in _FLAG_KINDS or flag.severity not in _SEVERITIES:
        raise TypeError("not a flag kind or severity")
    if not _opt_str(flag.span_id):
        raise TypeError("span id not a str")
    wire: dict[str, Any] = {
        "kind": flag.kind,
        "severity": flag.severity,
        "at": _moment(flag.at),
        "message": _text(flag.message),
    }
    if flag.span_id is not None:
        wire["span_id"] = flag.span_id
    return wire
