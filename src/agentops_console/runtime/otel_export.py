"""Sessions of the explicit API as OpenTelemetry GenAI spans: the path past one machine.

Each API session becomes one trace (or a subtree of the agent's current span): a root
`invoke_agent <agent>` span, and a child per call as the call finishes (`chat <model>`,
`execute_tool <tool>`), each with its real start and end time. The root is started with
the session's start time when its first child finishes (so the trace id exists from then
on) and ends when the session ends, carrying the outcome, cost and flags. Children are
emitted as they finish rather than at the session's end, so a long session shows up while
it runs and the span ring (`spans_per_session`) never drops what the export should see.

A call recorded with a `parent_id` is exported as the child of that call's span. A child
usually ends before its parent (an LLM call inside a tool call): it waits, at most
`WAITING_MAX` of them per session, until its parent is emitted; one whose parent never
comes (an id the session never recorded) is emitted under the root when the session ends,
so nothing is dropped and the trace never points at a span that does not exist.

Values come from the session's own copy, after the retention rules and the redaction hook:
nothing raw leaves through here. Every emitted span carries `agentops.exported = true`,
and both ways in (`GenAISpanProcessor`, `POST /v1/traces`) ignore such spans, so a
provider that feeds `rt.span_processor()` and is also the export provider cannot loop.
Sessions made from OpenTelemetry spans are never emitted again.

An export that fails (a broken provider or processor) never fails the agent's call; it is
counted (`agentops_otel_export_failures` on /metrics).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .spans import SpanRecord

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

    from .core import Runtime
    from .session import Session

#: Set on every span this module emits; the ingest paths skip spans that carry it.
EXPORTED = "agentops.exported"
_OK_OUTCOMES = frozenset({"ok", "running"})
#: `Session.otel_root` once the root has ended: the SDK span is let go (a finished session
#: stays in the ring for a while), and a call that finishes after the end is not emitted.
_ENDED = ("ended",)
#: Exported span contexts kept per session to parent later calls on (newest first out).
EMITTED_KEPT = 256
#: Children held per session until their parent is emitted; past it they go under the root.
WAITING_MAX = 256


@dataclass(slots=True)
class _Trace:
    """`Session.otel_root` while the session's export is open."""

    root: Span
    context: Any  # the root set in a Context, the parent of calls without a known parent
    emitted: OrderedDict[str, Any] = field(default_factory=OrderedDict)  # span id → Context
    waiting: dict[str, list[SpanRecord]] = field(default_factory=dict)  # parent id → children
    waiting_count: int = 0


def _ns(ts: float) -> int:
    return int(ts * 1e9)


def _json(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


class OTelExporter:
    """Emits API sessions on a TracerProvider (the given one, else the global one)."""

    def __init__(self, runtime: Runtime, provider: Any = None) -> None:
        from opentelemetry import trace

        self.runtime = runtime
        self.failures = 0
        self.spans_total = 0
        provider = provider if provider is not None else trace.get_tracer_provider()
        self.tracer: Tracer = provider.get_tracer("agentops_console.runtime")

    # -- what the session calls ------------------------------------------------------
    def span_ended(self, session: Session, span: SpanRecord) -> None:
        if session.otel_root is _ENDED:
            return
        try:
            self._emit_child(session, span)
        except Exception:  # a broken provider must never break the guard
            self.failures += 1

    def session_ended(self, session: Session) -> None:
        if session.otel_root is _ENDED:
            return
        try:
            self._end_root(session)
        except Exception:
            self.failures += 1
        finally:
            session.otel_root = _ENDED

    # -- emitting --------------------------------------------------------------------
    def _root(self, session: Session) -> _Trace:
        from opentelemetry import trace

        if session.otel_root is None:
            rt = self.runtime
            attributes: dict[str, Any] = {
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": rt.agent_name,
                "gen_ai.agent.version": rt.version,
                "gen_ai.conversation.id": session.id,
                "agentops.workflow": session.workflow,
                "agentops.principal": session.principal,
                EXPORTED: True,
            }
            if session.tenant is not None:
                attributes["agentops.tenant"] = session.tenant
            root = self.tracer.start_span(
                f"invoke_agent {rt.agent_name}",
                kind=trace.SpanKind.INTERNAL,
                attributes=attributes,
                start_time=_ns(session.started),
            )
            self.spans_total += 1
            context = root.get_span_context()
            if context.is_valid:
                session.trace_id = f"{context.trace_id:032x}"
            session.otel_root = _Trace(root, trace.set_span_in_context(root))
        state: _Trace = session.otel_root
        return state

    def _emit_child(self, session: Session, span: SpanRecord, orphan: bool = False) -> None:
        """Emit `span` under its parent's exported span (or the root), then the children that
        were waiting for it. `orphan`: the parent will never come, use the root."""
        state = self._root(session)
        parent = state.context
        if span.parent_id is not None and not orphan:
            known = state.emitted.get(span.parent_id)
            if known is not None:
                parent = known
            elif state.waiting_count < WAITING_MAX:
                state.waiting.setdefault(span.parent_id, []).append(span)
                state.waiting_count += 1
                return
        self._emit(session, state, span, parent)
        for child in state.waiting.pop(span.id, ()):
            state.waiting_count -= 1
            self._emit_child(session, child)

    def _emit(self, session: Session, state: _Trace, span: SpanRecord, parent: Any) -> None:
        from opentelemetry import trace

        attributes: dict[str, Any] = {"gen_ai.conversation.id": session.id, EXPORTED: True}
        if span.kind == "llm":
            name = f"chat {span.model or 'unknown'}"
            kind = trace.SpanKind.CLIENT
            attributes["gen_ai.operation.name"] = "chat"
            attributes["gen_ai.request.model"] = span.model or "unknown"
            if span.provider:
                attributes["gen_ai.provider.name"] = span.provider
            attributes["gen_ai.usage.input_tokens"] = span.tokens_in
            attributes["gen_ai.usage.output_tokens"] = span.tokens_out
        else:
            name = f"execute_tool {span.tool or span.name}"
            kind = trace.SpanKind.INTERNAL
            attributes["gen_ai.operation.name"] = "execute_tool"
            attributes["gen_ai.tool.name"] = span.tool or span.name
            if span.arguments is not None:
                attributes["gen_ai.tool.call.arguments"] = _json(span.arguments)
            if span.output is not None:
                attributes["gen_ai.tool.call.result"] = _json(span.output)
            if span.tool_version:
                attributes["agentops.tool.version"] = span.tool_version
            if span.kind == "retrieval":
                attributes["agentops.retrieval"] = True
            if span.confidence is not None:
                attributes["agentops.retrieval.confidence"] = span.confidence
        note = span.policy
        if note is not None:
            attributes["agentops.policy.decision"] = note.decision
            if note.reasons:
                attributes["agentops.policy.reasons"] = list(note.reasons)
            if note.version:
                attributes["agentops.policy.version"] = note.version
            if note.approval_id:
                attributes["agentops.approval.id"] = note.approval_id
        attributes["agentops.cost_usd"] = span.cost_usd
        attributes["agentops.span.outcome"] = span.outcome
        attributes["agentops.loop"] = span.loop
        child = self.tracer.start_span(
            name, context=parent, kind=kind, attributes=attributes, start_time=_ns(span.started)
        )
        if span.outcome not in _OK_OUTCOMES:
            child.set_attribute("error.type", span.outcome)
            child.set_status(trace.Status(trace.StatusCode.ERROR, span.error or span.outcome))
        child.end(end_time=_ns(span.ended if span.ended is not None else span.started))
        self.spans_total += 1
        emitted = state.emitted
        emitted[span.id] = trace.set_span_in_context(child)
        if len(emitted) > EMITTED_KEPT:
            emitted.popitem(last=False)

    def _end_root(self, session: Session) -> None:
        from opentelemetry import trace

        state = self._root(session)
        while state.waiting:  # parents that never came; emitting one may release others
            _, children = state.waiting.popitem()
            state.waiting_count -= len(children)
            for child in children:
                self._emit_child(session, child, orphan=True)
        root = state.root
        attributes: dict[str, Any] = {
            "agentops.status": session.status,
            "agentops.outcome": session.outcome_value or "unknown",
            "agentops.cost_usd": round(session.cost_usd, 9),
            "agentops.tool_calls": session.tool_calls,
            "agentops.loops": session.loop,
            "agentops.unauthorized_attempts": session.unauthorized_attempts,
            "gen_ai.usage.input_tokens": session.tokens_in,
            "gen_ai.usage.output_tokens": session.tokens_out,
        }
        if session.outcome_reason:
            attributes["agentops.outcome.reason"] = session.outcome_reason
        if session.input_text is not None:
            attributes["agentops.input"] = session.input_text
        if session.output_text is not None:
            attributes["agentops.output"] = session.output_text
        flags = list(session.flags)
        if flags:
            attributes["agentops.flags"] = sorted({f.kind for f in flags})
        if session.killed is not None:
            attributes["agentops.killed_by"] = session.killed.operator
        root.set_attributes(attributes)
        for flag in flags:
            root.add_event(
                "agentops.flag",
                {
                    "agentops.flag.kind": flag.kind,
                    "agentops.flag.severity": flag.severity,
                    "agentops.flag.message": flag.message,
                },
                timestamp=_ns(flag.at.timestamp()),
            )
        if session.status in ("failed", "killed", "stopped"):
            root.set_status(
                trace.Status(trace.StatusCode.ERROR, session.outcome_reason or session.status)
            )
        root.end(end_time=_ns(session.ended if session.ended is not None else session.last_event))
