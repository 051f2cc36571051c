"""A span as the runtime keeps it: plain slots, turned into the wire `Span` only when read."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from ..protocol.models import CostSplit, PolicyDecision, Span, SpanKind, SpanOutcome

_span_ids = itertools.count(1)
#: The attributes of a span that has none: one shared, read-only mapping, not a dict each.
NO_ATTRIBUTES: Mapping[str, Any] = MappingProxyType({})


def next_span_id() -> str:
    """A span id unique in this process (sessions and tool calls both take them here)."""
    return f"{next(_span_ids):x}"


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


@dataclass(slots=True)
class PolicyNote:
    """The policy decision of one call, kept as plain values until someone reads it."""

    decision: str
    reasons: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    version: str | None = None
    approval_id: str | None = None
    evaluated_us: float | None = None

    def to_model(self) -> PolicyDecision:
        return PolicyDecision(
            decision=self.decision,
            reasons=list(self.reasons),
            errors=list(self.errors),
            policy_version=self.version,
            approval_id=self.approval_id,
            evaluated_us=self.evaluated_us,
        )


@dataclass(slots=True)
class SpanRecord:
    id: str
    session_id: str
    kind: SpanKind
    name: str
    loop: int
    started: float
    parent_id: str | None = None
    ended: float | None = None
    latency_ms: float | None = None
    outcome: SpanOutcome = "running"
    error: str | None = None
    principal: str | None = None
    tool: str | None = None
    tool_version: str | None = None
    arguments: Any = None
    output: Any = None
    policy: PolicyNote | None = None
    model: str | None = None
    provider: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    tokens_cache_read: int = 0
    tokens_cache_write: int = 0
    tokens_reasoning: int = 0
    cost_usd: float = 0.0
    #: USD by what was billed, in pricing.Cost.parts() order (an array of doubles: no float
    #: object per part); None for unpriced calls and tools
    cost_split: Sequence[float] | None = None
    unpriced: bool = False
    confidence: float | None = None
    #: replaced, never changed in place (it may be the shared NO_ATTRIBUTES)
    attributes: Mapping[str, Any] = field(default_factory=lambda: NO_ATTRIBUTES)

    @classmethod
    def llm(
        cls,
        session_id: str,
        name: str,
        loop: int,
        started: float,
        ended: float,
        latency_ms: float | None,
        principal: str | None,
        model: str | None,
        provider: str | None,
        counts: tuple[int, int, int, int, int],
        cost_usd: float,
        split: Sequence[float] | None,
        parent_id: str | None,
    ) -> SpanRecord:
        """An LLM call's span, made positionally: keyword construction of 29 fields cost
        several times more, on every LLM call and span."""
        tokens_in, tokens_out, cache_read, cache_write, reasoning = counts
        return cls(
            next_span_id(), session_id, "llm", name, loop, started, parent_id, ended,
            latency_ms, "ok", None, principal, None, None, None, None, None, model, provider,
            tokens_in, tokens_out, cache_read, cache_write, reasoning, cost_usd, split,
            split is None, None, NO_ATTRIBUTES,
        )  # fmt: skip

    @classmethod
    def tool_started(
        cls,
        session_id: str,
        kind: SpanKind,
        name: str,
        loop: int,
        started: float,
        parent_id: str | None,
        principal: str | None,
        version: str | None,
        arguments: Any,
    ) -> SpanRecord:
        """A tool call's span as it starts (running), made positionally like `llm`."""
        return cls(
            next_span_id(), session_id, kind, name, loop, started, parent_id, None, None,
            "running", None, principal, name, version, arguments, None, None, None, None,
            0, 0, 0, 0, 0, 0.0, None, False, None, NO_ATTRIBUTES,
        )  # fmt: skip

    def to_model(self) -> Span:
        return Span(
            id=self.id,
            session_id=self.session_id,
            parent_id=self.parent_id,
            kind=self.kind,
            name=self.name,
            loop=self.loop,
            started_at=utc(self.started),
            ended_at=None if self.ended is None else utc(self.ended),
            latency_ms=self.latency_ms,
            outcome=self.outcome,
            error=self.error,
            principal=self.principal,
            tool=self.tool,
            tool_version=self.tool_version,
            arguments=jsonable(self.arguments),
            output=jsonable(self.output),
            policy=None if self.policy is None else self.policy.to_model(),
            model=self.model,
            provider=self.provider,
            tokens_in=self.tokens_in,
            tokens_out=self.tokens_out,
            tokens_cache_read=self.tokens_cache_read,
            tokens_cache_write=self.tokens_cache_write,
            tokens_reasoning=self.tokens_reasoning,
            cost_usd=self.cost_usd,
            cost_split=None if self.cost_split is None else cost_split(self.cost_split),
            unpriced=self.unpriced,
            confidence=self.confidence,
            attributes={k: jsonable(v) for k, v in self.attributes.items()},
        )


def cost_split(parts: Sequence[float]) -> CostSplit:
    """The wire split from pricing.Cost.parts() order, rounded like cost_usd on summaries."""
    names = ("input", "cache_read", "cache_write", "output", "reasoning", "request")
    return CostSplit(**{name: round(part, 9) for name, part in zip(names, parts, strict=True)})


#: Values jsonable returns as they are, by exact type: checked first, with one set lookup.
_PLAIN = frozenset((str, int, bool, type(None)))
#: A dict key longer than this is cut (safe_text's limit for keys).
_KEY_LIMIT = 200


def jsonable(value: Any, depth: int = 0) -> Any:
    """Agent values as JSON: anything unusual becomes its (bounded) repr, never an error.

    Exact dicts and lists take a loop that returns plain items without a call: an agent's
    arguments and outputs are mostly flat, and every span read renders both (the detail
    endpoint, the event stream). The result is the general path's, item for item."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is float:
        return value if math.isfinite(value) else repr(value)
    if depth <= 16:
        if kind is dict:
            out: dict[str, Any] = {}
            for key, item in value.items():
                text = (
                    key
                    if type(key) is str and len(key) <= _KEY_LIMIT
                    else safe_text(key, _KEY_LIMIT)
                )
                out[text] = item if type(item) in _PLAIN else jsonable(item, depth + 1)
            return out
        if kind is list or kind is tuple:
            return [item if type(item) in _PLAIN else jsonable(item, depth + 1) for item in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if depth > 16:
        return TOO_DEEP
    if isinstance(value, dict):
        return {safe_text(k, 200): jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v, depth + 1) for v in value]
    return safe_text(value)


#: What stands for the part of an agent's value nested deeper than anyone reads.
TOO_DEEP = "<nested too deep>"


def safe_text(value: Any, limit: int = 2000) -> str:
    """Text for any agent value: a string as it is, else its repr; a repr that fails (or
    recurses without end) becomes the type's name. Cut to `limit` characters."""
    if isinstance(value, str):
        return value[:limit]
    try:
        text = repr(value)
    except Exception:  # RecursionError included
        text = f"<{type(value).__name__}>"
    return text[:limit]
