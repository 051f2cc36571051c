"""OpenTelemetry GenAI spans become sessions and spans, with no change to the agent's code.

Two ways in, one mapping (`OTelMapper`):
- `GenAISpanProcessor`, added to the agent's TracerProvider, sees spans as they start and
  end. Its `on_start` runs before the tool body of an `execute_tool` span, so a kill, a
  disabled workflow, a policy deny or a pending checkpoint is enforced there: the
  exception propagates out of `start_span` and the tool never runs.
- `POST /v1/traces` (OTLP/HTTP) sees finished spans only: it records them and flags what
  the policy would have refused, since nothing can be stopped after the fact.

Semantic conventions used: `gen_ai.operation.name` (invoke_agent, chat, text_completion,
generate_content, embeddings, execute_tool, retrieval), `gen_ai.conversation.id`
(the session; the trace id when absent), `gen_ai.agent.name` (the workflow),
`gen_ai.tool.name`, `gen_ai.tool.call.arguments`, `gen_ai.request.model`,
`gen_ai.provider.name`, `gen_ai.usage.input_tokens` / `output_tokens`. Usage on an
`invoke_agent` span is the aggregate of its LLM calls: it is counted only when no LLM
span of the session reported usage itself, so nothing is counted twice.

Telemetry is untrusted and may never end what it starts (spans with no root
`invoke_agent`, a new trace each), so every table here is bounded: at most
`otel_sessions_max` OTel sessions are active, the least recently active one is ended to
make room (counted in `RuntimeStats.otel_sessions_evicted`), and idle ones are ended by
`Runtime.sweep_idle`, on the runtime's timer while its endpoint runs and on arriving spans
otherwise.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import GuardError
from .genai_span import GenAISpan
from .otel_export import EXPORTED
from .session import REPORTED_OUTCOMES, token_count

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import ReadableSpan, Span

    from .core import Runtime
    from .session import Session
    from .tool_call import ToolCall

LLM_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "embeddings"})
AGENT_OPERATIONS = frozenset({"invoke_agent", "create_agent"})
TOOL_OPERATIONS = frozenset({"execute_tool"})
RETRIEVAL_OPERATIONS = frozenset({"retrieval"})
_TRACES_KEPT = 10_000
_SWEEP_EVERY_S = 5.0
V = TypeVar("V")


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _arguments(value: Any) -> Any:
    """Tool arguments arrive as a JSON string by convention; keep the text if it is not."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def operation_of(span: GenAISpan) -> str | None:
    op = span.operation
    if op is None and span.name.startswith("execute_tool "):
        return "execute_tool"
    return op


class OTelMapper:
    """Keeps the span-to-session bookkeeping for both ingest paths; thread-safe."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._lock = threading.RLock()
        self._traces: OrderedDict[str, str] = OrderedDict()  # trace id -> session id
        self._llm_usage_seen: OrderedDict[str, bool] = OrderedDict()
        self._roots: OrderedDict[str, str] = OrderedDict()  # session id -> root span id
        self._open_tools: OrderedDict[str, ToolCall] = OrderedDict()  # span id -> its call
        # the active sessions this mapper started, least recently active first
        self._live: OrderedDict[str, None] = OrderedDict()
        self._last_sweep = time.monotonic()

    # -- sessions --------------------------------------------------------------------
    def session_for(self, span: GenAISpan) -> Session:
        attrs = span.attributes
        rt = self.runtime
        with self._lock:
            session_id = _str(attrs.get("gen_ai.conversation.id")) or self._traces.get(
                span.trace_id
            )
            if session_id is None:
                session_id = span.trace_id
            self._traces[span.trace_id] = session_id
            self._traces.move_to_end(span.trace_id)
            _trim(self._traces, _TRACES_KEPT)
            session = rt.get(session_id)
            if session is None:
                workflow = _str(attrs.get("gen_ai.agent.name")) or span.service_name or "otel"
                principal = _str(attrs.get("enduser.id")) or _str(attrs.get("user.id")) or "unknown"
                session = rt.session(
                    workflow,
                    principal,
                    session_id=session_id,
                    source="otel",
                    tenant=_str(attrs.get("tenant.id")),
                )
                session.trace_id = span.trace_id
                self._live[session.id] = None
                self._make_room()
            elif session.id in self._live:
                self._live.move_to_end(session.id)
        return session

    def _make_room(self) -> None:
        """Over the cap: end the least recently active OTel sessions (oldest first)."""
        rt = self.runtime
        while len(self._live) > rt.config.otel_sessions_max:
            oldest = rt.get(next(iter(self._live)))
            if oldest is None or oldest.ended is not None:
                self._live.popitem(last=False)  # not ours to end any more
                continue
            oldest.end("completed")  # calls session_ended(), which forgets it
            rt.stats.otel_sessions_evicted += 1

    def session_ended(self, session_id: str) -> None:
        """A session this mapper started has ended (its root span, the sweep, eviction):
        nothing about it is kept any longer."""
        with self._lock:
            self._live.pop(session_id, None)
            self._roots.pop(session_id, None)
            self._llm_usage_seen.pop(session_id, None)

    def _maybe_sweep(self) -> None:
        now = time.monotonic()
        if now - self._last_sweep >= _SWEEP_EVERY_S:
            self._last_sweep = now
            self.runtime.sweep_idle(self.runtime.config.otel_idle_s)

    # -- the two moments of a span ---------------------------------------------------
    def on_start(self, span: GenAISpan) -> None:
        """Enforce before the work runs; raises a GuardError to refuse a tool call."""
        op = operation_of(span)
        if op in AGENT_OPERATIONS:
            session = self.session_for(span)
            with self._lock:
                if span.parent_span_id is None or session.id not in self._roots:
                    self._roots.setdefault(session.id, span.span_id)
                    _trim(self._roots, _TRACES_KEPT)
            return
        if op not in TOOL_OPERATIONS:
            return
        call = self._tool_call_for(span)
        call.__enter__()  # raises SessionKilled / PolicyDenied / BudgetExceeded
        with self._lock:
            self._open_tools[span.span_id] = call
            stale = _trim(self._open_tools, _TRACES_KEPT)
        for never_ended in stale:  # its span was dropped by the SDK without an end
            never_ended.finish(RuntimeError("the tool span never ended"))

    def on_end(self, span: GenAISpan) -> bool:
        """Record a finished span; True when it became part of a session."""
        self.runtime.stats.otel_spans_total += 1
        op = operation_of(span)
        if op is None:
            return self._root_outcome(span)
        with self._lock:
            open_call = self._open_tools.pop(span.span_id, None)
        if open_call is not None:
            if span.error:
                open_call.span.error = span.error
            output = span.attributes.get("gen_ai.tool.call.result")
            if output is not None:
                open_call.output = _arguments(output)
            open_call.finish(RuntimeError(span.error) if span.error else None)
            return True
        if op in LLM_OPERATIONS:
            self._record_llm(span)
        elif op in TOOL_OPERATIONS or op in RETRIEVAL_OPERATIONS:
            self._record_tool(span, op)
        elif op in AGENT_OPERATIONS:
            self._record_agent(span)
        else:
            return False
        self._maybe_sweep()
        return True

    def ingest(self, spans: list[GenAISpan]) -> int:
        """OTLP batches: in end order, so children land before the agent span that ends them."""
        accepted = 0
        # Sessions first, from the GenAI spans that name them, agent spans before the rest
        # (they carry the agent's name and the user): a child that ends before its agent
        # span must land in the same session.
        # our own export coming back (a collector pointed at this endpoint): never again
        spans = [s for s in spans if not s.attributes.get(EXPORTED)]
        agents = [s for s in spans if operation_of(s) in AGENT_OPERATIONS]
        named = [
            s
            for s in spans
            if operation_of(s) not in (None, *AGENT_OPERATIONS)
            and s.attributes.get("gen_ai.conversation.id")
        ]
        for span in agents + named:
            try:
                self.session_for(span)
            except (GuardError, ValueError):
                continue
        for span in sorted(spans, key=lambda s: (s.end_ns or s.start_ns, s.start_ns)):
            try:
                accepted += self.on_end(span)
            except (GuardError, ValueError):
                continue
        return accepted

    # -- mapping ---------------------------------------------------------------------
    def _record_llm(self, span: GenAISpan) -> None:
        attrs = span.attributes
        session = self.session_for(span)
        tokens_in = token_count(attrs.get("gen_ai.usage.input_tokens"), strict=False)
        tokens_out = token_count(attrs.get("gen_ai.usage.output_tokens"), strict=False)
        if tokens_in or tokens_out:
            with self._lock:
                self._llm_usage_seen[session.id] = True
                _trim(self._llm_usage_seen, _TRACES_KEPT)
        session.llm_call(
            model=_str(attrs.get("gen_ai.request.model"))
            or _str(attrs.get("gen_ai.response.model"))
            or "unknown",
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            provider=_str(attrs.get("gen_ai.provider.name")) or _str(attrs.get("gen_ai.system")),
            latency_ms=_latency_ms(span),
            name=span.name,
            parent_id=span.parent_span_id,
            enforce=False,
        )

    def _record_tool(self, span: GenAISpan, op: str) -> None:
        call = self._tool_call_for(span)
        if op in RETRIEVAL_OPERATIONS:
            call.span.kind = "retrieval"
        result = span.attributes.get("gen_ai.tool.call.result")
        if result is not None:
            call.output = _arguments(result)
        end_ns = span.end_ns or span.start_ns
        call.observe(span.start_ns / 1e9, end_ns / 1e9, span.error)

    def _record_agent(self, span: GenAISpan) -> None:
        session = self.session_for(span)
        attrs = span.attributes
        with self._lock:
            usage_seen = self._llm_usage_seen.pop(session.id, False)
            root = self._roots.get(session.id)
            is_root = root == span.span_id or (root is None and span.parent_span_id is None)
            if is_root:
                self._roots.pop(session.id, None)
            else:
                self._llm_usage_seen[session.id] = usage_seen
        tokens_in = token_count(attrs.get("gen_ai.usage.input_tokens"), strict=False)
        tokens_out = token_count(attrs.get("gen_ai.usage.output_tokens"), strict=False)
        if (tokens_in or tokens_out) and not usage_seen and is_root:
            # Only the aggregate was reported: count it once, as one LLM span.
            session.llm_call(
                model=_str(attrs.get("gen_ai.request.model")) or "unknown",
                input_tokens=tokens_in,
                output_tokens=tokens_out,
                provider=_str(attrs.get("gen_ai.provider.name")),
                name=f"{span.name} (aggregate usage)",
                parent_id=span.span_id,
                enforce=False,
            )
        if is_root:
            self._report(session, attrs)
            session.end("failed" if span.error else "completed")

    def _report(self, session: Session, attrs: dict[str, Any]) -> None:
        """`agentops.outcome` (+ `.reason`), `agentops.input`, `agentops.output` on a root
        span: what `s.outcome()`, `s.input()`, `s.output()` report for API sessions. An
        unknown outcome value from telemetry is ignored (the session gets a derived one)."""
        outcome = attrs.get("agentops.outcome")
        if isinstance(outcome, str) and outcome in REPORTED_OUTCOMES:
            reason = attrs.get("agentops.outcome.reason")
            session.outcome(outcome, reason if isinstance(reason, str) else None)
        for key, report in (("agentops.input", session.input), ("agentops.output", session.output)):
            if key in attrs:
                report(attrs[key])

    def _root_outcome(self, span: GenAISpan) -> bool:
        """A trace's root span that is no GenAI span (OpenInference-style frameworks) may
        carry the outcome of the session its trace made; the session may have ended."""
        attrs = span.attributes
        if span.parent_span_id is not None or "agentops.outcome" not in attrs:
            return False
        with self._lock:
            session_id = self._traces.get(span.trace_id)
        session = None if session_id is None else self.runtime.get(session_id)
        if session is None or session.source != "otel":
            return False
        self._report(session, attrs)
        return True

    def _tool_call_for(self, span: GenAISpan) -> ToolCall:
        call = self.session_for(span).tool_call(
            self._tool_name(span),
            _arguments(span.attributes.get("gen_ai.tool.call.arguments")),
            parent_id=span.parent_span_id,
        )
        call.span.attributes = _tool_attributes(span)
        return call

    @staticmethod
    def _tool_name(span: GenAISpan) -> str:
        name = _str(span.attributes.get("gen_ai.tool.name"))
        if name is None and span.name.startswith("execute_tool "):
            name = span.name[len("execute_tool ") :].strip() or None
        return name or "unknown_tool"


def _trim(table: OrderedDict[str, V], size: int) -> list[V]:
    """Drop the oldest entries beyond `size`; returns what was dropped."""
    dropped = []
    while len(table) > size:
        dropped.append(table.popitem(last=False)[1])
    return dropped


def _latency_ms(span: GenAISpan) -> float | None:
    if span.end_ns is None:
        return None
    return round((span.end_ns - span.start_ns) / 1e6, 3)


def _tool_attributes(span: GenAISpan) -> dict[str, Any]:
    keep = ("gen_ai.tool.call.id", "gen_ai.tool.type", "gen_ai.tool.description")
    attrs = {k: span.attributes[k] for k in keep if k in span.attributes}
    attrs["otel.trace_id"] = span.trace_id
    attrs["otel.span_id"] = span.span_id
    return attrs


def from_sdk_span(span: ReadableSpan, ended: bool) -> GenAISpan:
    """An SDK span as the neutral GenAISpan (attributes copied: the SDK's are immutable)."""
    context = span.get_span_context()
    parent = span.parent
    status = span.status
    error = None
    if ended and status is not None and status.status_code.name == "ERROR":
        error = status.description or "error"
    resource = span.resource
    service = resource.attributes.get("service.name") if resource is not None else None
    return GenAISpan(
        trace_id=f"{context.trace_id:032x}" if context else "0" * 32,
        span_id=f"{context.span_id:016x}" if context else "0" * 16,
        parent_span_id=f"{parent.span_id:016x}" if parent is not None else None,
        name=span.name,
        start_ns=span.start_time or 0,
        end_ns=span.end_time if ended else None,
        attributes=dict(span.attributes or {}),
        error=error,
        service_name=service if isinstance(service, str) else None,
    )


def _processor_base() -> type:
    from opentelemetry.sdk.trace import SpanProcessor

    return SpanProcessor


class GenAISpanProcessor(_processor_base()):  # type: ignore[misc]
    """Add to a TracerProvider; the runtime sees every GenAI span and guards tool spans.

    Spans without `gen_ai.operation.name` (HTTP, DB, ...) cost one dict lookup.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.mapper = runtime.otel_mapper()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        attrs = span.attributes or {}
        if EXPORTED in attrs:  # the runtime's own export: already a session here
            return
        op = attrs.get("gen_ai.operation.name")
        if op is None and not span.name.startswith("execute_tool "):
            return
        if op not in TOOL_OPERATIONS and op not in AGENT_OPERATIONS and op is not None:
            return
        self.mapper.on_start(from_sdk_span(span, ended=False))

    def on_end(self, span: ReadableSpan) -> None:
        attrs = span.attributes or {}
        if EXPORTED in attrs:
            return
        if (
            "gen_ai.operation.name" not in attrs
            and "agentops.outcome" not in attrs
            and not span.name.startswith("execute_tool ")
        ):
            return
        with contextlib.suppress(GuardError):  # on_end records; it must never raise
            self.mapper.on_end(from_sdk_span(span, ended=True))

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
