"""OpenTelemetry spans become sessions and spans, with no change to the agent's code.

Two dialects, read once each into a `Step` (`runtime.genai_span`, `runtime.openinference`):
the OpenTelemetry GenAI conventions (`gen_ai.operation.name`, ...) and OpenInference
(`openinference.span.kind`, ...); a span carrying both is one Step (GenAI first, gaps filled
from OpenInference), so it is counted once. Two ways in, one mapping (`OTelMapper`):
- `GenAISpanProcessor`, added to the agent's TracerProvider, sees spans as they start and
  end. Its `on_start` runs before the body of a tool span (`execute_tool`, or an
  OpenInference TOOL span whose kind is set at start), so a kill, a disabled workflow, a
  policy deny or a pending checkpoint is enforced there: the exception propagates out of
  `start_span` and the tool never runs.
- `POST /v1/traces` (OTLP/HTTP) sees finished spans only: it records them and flags what
  the policy would have refused, since nothing can be stopped after the fact.

Sessions: one per conversation, keyed by `gen_ai.conversation.id` / `session.id`, else by
the trace. The run's outermost agent span (GenAI `invoke_agent`, OpenInference AGENT or
CHAIN) names the workflow and ends the session; when the trace's root is no agent span (an
HTTP server span around the run), that root's end ends it. A later run under the same id (a
new trace, or a new root agent span) re-opens the ended session (`Session.reopen`): ended
completed or failed it runs again; killed or stopped it stays so and the guard refuses its
tool spans; either way that run's end publishes `session_ended` again, so the records get
it. A session the runtime no longer holds (evicted) starts anew under the same id.

Usage reported by an agent span is the aggregate of its LLM calls: it is counted only on the
run's root and only when no LLM span of the session reported usage; an LLM span whose child
LLM span reported usage (a framework span around a provider SDK span) is the same call and
is not recorded again.

Telemetry is untrusted and may never end what it starts (spans with no root, a new trace
each), so every table here is bounded: at most `otel_sessions_max` OTel sessions are active,
the least recently active one is ended to make room (counted in
`RuntimeStats.otel_sessions_evicted`), and idle ones are ended by `Runtime.sweep_idle`, on
the runtime's timer while its endpoint runs and on arriving spans otherwise.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import GuardError
from .genai_span import (
    AGENT_OPERATIONS,
    LLM_OPERATIONS,
    RETRIEVAL_OPERATIONS,
    TOOL_OPERATIONS,
    GenAISpan,
    Step,
    genai_result,
    genai_step,
    genai_tool_step,
    text,
)
from .openinference import SPAN_KIND, START_KINDS, openinference_result, openinference_step
from .otel_export import EXPORTED
from .pricing import usage_attributes, usage_values
from .retention import bounded
from .session import REPORTED_OUTCOMES, billed_usage, token_count
from .tool_call import LATE_ATTRIBUTES, LATE_OTLP

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import ReadableSpan, Span

    from .core import Runtime
    from .session import Session
    from .spans import SpanRecord
    from .tool_call import ToolCall

__all__ = [
    "AGENT_OPERATIONS",
    "LLM_OPERATIONS",
    "RETRIEVAL_OPERATIONS",
    "TOOL_OPERATIONS",
    "GenAISpanProcessor",
    "OTelMapper",
    "result_of",
    "step_of",
]

_TRACES_KEPT = 10_000
_SWEEP_EVERY_S = 5.0
_START_OPERATIONS = TOOL_OPERATIONS | AGENT_OPERATIONS
#: `metadata` kept on a span: this many keys, each value's JSON cut to this many characters.
METADATA_KEYS = 32
METADATA_VALUE_CHARS = 256
_METADATA_TEXT = 64 * 1024
K = TypeVar("K")
V = TypeVar("V")


def result_of(span: GenAISpan) -> tuple[bool, Any]:
    """A tool span's result, GenAI first."""
    return _result_in(span.attributes)


def _result_in(attrs: Mapping[str, Any]) -> tuple[bool, Any]:
    """(whether there is one, the value) of a tool span's result from its attributes."""
    found = genai_result(attrs)
    if not found[0] and SPAN_KIND in attrs:
        return openinference_result(attrs if isinstance(attrs, dict) else dict(attrs))
    return found


def step_of(span: GenAISpan) -> Step | None:
    """The span's meaning: GenAI first, OpenInference filling what GenAI left out."""
    step = genai_step(span)
    if SPAN_KIND not in span.attributes:
        return step
    other = openinference_step(span)
    if step is None or other is None:
        return step or other
    return step.fill(other)


class OTelMapper:
    """Keeps the span-to-session bookkeeping for both ingest paths; thread-safe."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._lock = threading.RLock()
        self._traces: OrderedDict[str, str] = OrderedDict()  # trace id -> session id
        self._llm_usage_seen: OrderedDict[str, bool] = OrderedDict()
        self._roots: OrderedDict[str, str] = OrderedDict()  # session id -> root span id
        self._open_tools: OrderedDict[str, ToolCall] = OrderedDict()  # span id -> its call
        # a trace's root span that was no agent span when it started (an HTTP server span,
        # or a LangChain chain whose kind comes at its end): trace id -> (span id, name)
        self._trace_roots: OrderedDict[str, tuple[str, str]] = OrderedDict()
        # the last agent span that ended right under such a root: trace id -> its name
        self._outer: OrderedDict[str, str] = OrderedDict()
        # spans with a child LLM span that reported usage (span id -> None)
        self._covered: OrderedDict[str, None] = OrderedDict()
        # the active sessions this mapper started, least recently active first
        self._live: OrderedDict[str, None] = OrderedDict()
        self._last_sweep = time.monotonic()
        # the newest entries of _traces and _live: a run's spans come one after another, so
        # most spans need no move in those LRU tables
        self._last_trace: str | None = None
        self._last_live: str | None = None

    # -- sessions --------------------------------------------------------------------
    def session_for(self, span: GenAISpan, step: Step, workflow: str | None = None) -> Session:
        return self.session_in(span.trace_id, span.service_name, step, workflow)

    def session_in(
        self, trace: str, service: str | None, step: Step, workflow: str | None = None
    ) -> Session:
        """The session a span of `trace` belongs to: the step's session id, else the one
        its trace already has, else the trace's own; started when it is not there."""
        rt = self.runtime
        with self._lock:
            session_id = step.session_id or self._traces.get(trace) or trace
            fresh = False  # the first span of this trace in this session: a later run?
            if trace != self._last_trace or self._traces.get(trace) != session_id:
                fresh = self._traces.get(trace) != session_id
                self._traces[trace] = session_id
                self._traces.move_to_end(trace)
                _trim(self._traces, _TRACES_KEPT)
                self._last_trace = trace
            session = rt.get(session_id)
            if (
                fresh
                and session is not None
                and session.ended is not None
                and session.source == "otel"
                and not self._reopen(session)
            ):
                session = rt.get(session_id)  # evicted meanwhile: None, a new session
            if session is None:
                if workflow is None and step.openinference:
                    root = self._trace_roots.get(trace)
                    workflow = None if root is None else root[1]
                session = rt.session(
                    step.agent or workflow or service or "otel",
                    step.principal or "unknown",
                    session_id=session_id,
                    source="otel",
                    tenant=step.tenant,
                )
                session.trace_id = trace
                rt.remembered_kill(session)
                self._live[session.id] = None
                self._last_live = session.id
                self._make_room()
            elif session.id != self._last_live and session.id in self._live:
                self._live.move_to_end(session.id)
                self._last_live = session.id
        return session

    def _reopen(self, session: Session) -> bool:
        """A later run of an ended conversation (`Session.reopen`): active and ours again,
        under the same bounds as a new session. Call with the lock held."""
        if not session.reopen():
            return False
        self._live[session.id] = None
        self._last_live = session.id
        self._make_room()
        return True

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

    def note_root(self, trace_id: str, span_id: str, name: str) -> None:
        """A trace's root span started and is no agent span (yet): it may name the run's
        session for now, and its end ends that session."""
        with self._lock:
            self._trace_roots[trace_id] = (span_id, name)
            _trim(self._trace_roots, _TRACES_KEPT)

    def _maybe_sweep(self) -> None:
        now = time.monotonic()
        if now - self._last_sweep >= _SWEEP_EVERY_S:
            self._last_sweep = now
            self.runtime.sweep_idle(self.runtime.config.otel_idle_s)

    # -- the two moments of a span ---------------------------------------------------
    def on_start(self, span: GenAISpan) -> None:
        """Enforce before the work runs; raises a GuardError to refuse a tool call."""
        step = step_of(span)
        if step is None:
            return
        if step.kind == "agent":
            session = self.session_for(span, step, step.label)
            with self._lock:
                if session.ended is not None and session.source == "otel":
                    self._reopen(session)  # a new root agent span in its trace: a later run
                if span.parent_span_id is None or session.id not in self._roots:
                    self._roots.setdefault(session.id, span.span_id)
                    _trim(self._roots, _TRACES_KEPT)
            return
        if step.kind != "tool":
            return
        call = self._tool_call_for(span, step)
        call.__enter__()  # raises SessionKilled / PolicyDenied / BudgetExceeded
        with self._lock:
            self._open_tools[span.span_id] = call
            stale = (
                _trim(self._open_tools, _TRACES_KEPT)
                if len(self._open_tools) > _TRACES_KEPT
                else ()
            )
        for never_ended in stale:  # its span was dropped by the SDK without an end
            never_ended.finish(RuntimeError("the tool span never ended"))

    def on_end(
        self, span: GenAISpan, step: Step | None = None, *, late: str = LATE_ATTRIBUTES
    ) -> bool:
        """Record a finished span; True when it became part of a session. `late` says why a
        tool span seen only now ran unguarded (end-only attributes, or OTLP)."""
        self.runtime.stats.otel_spans_total += 1
        open_call: ToolCall | None = None
        covered = False
        span_id = span.span_id
        if span_id in self._open_tools or span_id in self._covered:  # else: no lock needed
            with self._lock:
                open_call = self._open_tools.pop(span_id, None)
                covered = self._covered.pop(span_id, False) is None
        if open_call is not None:  # guarded at its start: only its end is news
            if span.error:
                open_call.span.error = span.error
            has_result, result = result_of(span)
            if has_result:
                open_call.output = result
            open_call.finish(RuntimeError(span.error) if span.error else None)
            return True
        if step is None:
            step = step_of(span)
        if step is None:
            return self._unmapped_end(span)
        kind = step.kind
        if kind == "llm":
            self._record_llm(span, step, covered)
        elif kind in {"tool", "retrieval"}:
            self._record_tool(span, step, late)
        elif kind == "agent":
            self._record_agent(span, step)
        else:
            return False
        self._maybe_sweep()
        return True

    def ingest(self, spans: list[GenAISpan]) -> int:
        """OTLP batches: in end order, so children land before the agent span that ends them."""
        # our own export coming back (a collector pointed at this endpoint): never again
        read = [(s, step_of(s)) for s in spans if not s.attributes.get(EXPORTED)]
        batch = {s.span_id: (s, step) for s, step in read}
        # Sessions first, from the spans that name them: the outermost agent span of each
        # trace (the batch's), then spans with an explicit session id; a child that ends
        # before its agent span must land in the session that span names.
        outermost = [
            (s, step)
            for s, step in read
            if step is not None and step.kind == "agent" and not _has_agent_above(s, batch)
        ]
        named = [
            (s, step)
            for s, step in read
            if step is not None and step.kind != "agent" and step.session_id
        ]
        for s, step in read:
            if step is None and s.parent_span_id is None:
                self.note_root(s.trace_id, s.span_id, s.name)
        for s, step in outermost + named:
            try:
                self.session_for(s, step, step.label)
            except (GuardError, ValueError):
                continue
        accepted = 0
        for s, step in sorted(read, key=lambda r: (r[0].end_ns or r[0].start_ns, r[0].start_ns)):
            try:
                accepted += self.on_end(s, step, late=LATE_OTLP)
            except (GuardError, ValueError):
                continue
        return accepted

    # -- mapping ---------------------------------------------------------------------
    def _record_llm(self, span: GenAISpan, step: Step, covered: bool) -> None:
        session = self.session_for(span, step)
        raw_in, raw_out, cache_read, cache_write, reasoning = usage_values(span.attributes)
        tokens_in = token_count(raw_in, strict=False)
        tokens_out = token_count(raw_out, strict=False)
        reported = bool(tokens_in or tokens_out)
        parent = span.parent_span_id
        # (re-setting a key keeps its place in these tables: skip the lock when set already)
        mark_seen = reported and self._llm_usage_seen.get(session.id) is not True
        mark_parent = (reported or covered) and parent is not None and parent not in self._covered
        if mark_seen or mark_parent:
            with self._lock:
                if reported:
                    self._llm_usage_seen[session.id] = True
                    _trim(self._llm_usage_seen, _TRACES_KEPT)
                if (reported or covered) and parent is not None:
                    self._covered[parent] = None
                    _trim(self._covered, _TRACES_KEPT)
        if covered:
            return  # a child LLM span reported this very call
        counts = billed_usage(tokens_in, tokens_out, cache_read, cache_write, reasoning, False)
        record = session.record_llm(
            step.model or "unknown",
            step.provider,
            counts,
            _latency_ms(span),
            span.name,
            parent,
        )
        if step.metadata is not None:
            _add_metadata(record, step.metadata)

    def _record_tool(self, span: GenAISpan, step: Step, late: str) -> None:
        call = self._tool_call_for(span, step)
        if step.kind == "retrieval":
            call.span.kind = "retrieval"
        if step.has_result:
            call.output = step.result
        end_ns = span.end_ns or span.start_ns
        call.observe(span.start_ns / 1e9, end_ns / 1e9, span.error, late)

    def _record_agent(self, span: GenAISpan, step: Step) -> None:
        session = self.session_for(span, step)
        attrs = span.attributes
        trace = span.trace_id
        with self._lock:
            usage_seen = self._llm_usage_seen.pop(session.id, False)
            root = self._roots.get(session.id)
            is_root = root == span.span_id or (root is None and span.parent_span_id is None)
            if is_root:
                self._roots.pop(session.id, None)
                self._outer.pop(trace, None)
                if span.parent_span_id is None:
                    self._trace_roots.pop(trace, None)
            else:
                self._llm_usage_seen[session.id] = usage_seen
            noted = self._trace_roots.get(trace)
            outer = not is_root and noted is not None and span.parent_span_id == noted[0]
            if outer and step.label:
                self._outer[trace] = step.label
                _trim(self._outer, _TRACES_KEPT)
            if is_root and session.ended is not None and session.source == "otel":
                # a run's root that ends after its session did (idle, evicted, a root seen
                # only now over OTLP): it ends the session again, so the records get it
                self._reopen(session)
        if is_root or outer:
            self._report_io(session, step)
        if not is_root:
            return
        usage = usage_attributes(attrs)
        tokens_in = token_count(usage.get("input_tokens"), strict=False)
        tokens_out = token_count(usage.get("output_tokens"), strict=False)
        if (tokens_in or tokens_out) and not usage_seen:
            # Only the aggregate was reported: count it once, as one LLM span.
            session.llm_call(
                model=step.model or "unknown",
                provider=step.provider,
                name=f"{span.name} (aggregate usage)",
                parent_id=span.span_id,
                enforce=False,
                **usage,
            )
        if step.label and step.label != session.workflow and session.source == "otel":
            _rename(session, step.label)
        self._report(session, attrs)
        session.end("failed" if span.error else "completed")

    def _report_io(self, session: Session, step: Step) -> None:
        """OpenInference `input.value` / `output.value` of the run: the session's task and
        answer, through the retention rules and the redact hook like `s.input()`."""
        if step.input is not None:
            session.input(step.input)
        if step.output is not None:
            session.output(step.output)

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

    def _unmapped_end(self, span: GenAISpan) -> bool:
        """A span of neither dialect: a trace's root may carry the outcome of the session
        its trace made (which may have ended), and ends that session if it still runs."""
        reported = self._root_outcome(span)
        if span.parent_span_id is None:
            reported = self.trace_root_ended(span.trace_id, span.span_id, span.error) or reported
        return reported

    def _root_outcome(self, span: GenAISpan) -> bool:
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

    def trace_root_ended(self, trace_id: str, span_id: str, error: str | None = None) -> bool:
        """The trace's root, no agent span, has ended: so has the run inside it. Its session
        takes the name of the outermost agent span under the root, and ends."""
        with self._lock:
            noted = self._trace_roots.get(trace_id)
            if noted is not None and noted[0] == span_id:
                del self._trace_roots[trace_id]
            name = self._outer.pop(trace_id, None)
            session_id = self._traces.get(trace_id)
            if session_id is None or session_id not in self._live or session_id in self._roots:
                return False  # not ours, or an agent span that is still open will end it
        session = self.runtime.get(session_id)
        if session is None or session.ended is not None:
            return False
        if name is not None:
            _rename(session, name)
        session.end("failed" if error else "completed")
        return True

    def _tool_call_for(self, span: GenAISpan, step: Step) -> ToolCall:
        session = self.session_for(span, step)
        return tool_call_in(session, step, span.trace_id, span.span_id, span.parent_span_id)


def tool_call_in(
    session: Session, step: Step, trace: str, span_id: str, parent_id: str | None
) -> ToolCall:
    """The session's guard for a tool span (not entered yet), its record carrying the
    span's kept attributes and OTel ids."""
    call = session.tool_call(step.tool or "unknown_tool", step.arguments, parent_id=parent_id)
    own = session.trace_id  # the session's copy when equal: one trace id string per run
    call.span.attributes = {
        **step.kept,
        "otel.trace_id": own if own == trace else trace,
        "otel.span_id": span_id,
    }
    if step.metadata is not None:
        _add_metadata(call.span, step.metadata)
    return call


def _rename(session: Session, workflow: str) -> None:
    """An OTel session learns its workflow late: from the run's outermost span, which ends
    last. Budgets and disables of the new name apply from the next call."""
    if workflow == session.workflow:
        return
    rt = session.runtime
    session.workflow = workflow
    session._limits = None  # limits are per workflow: look them up again
    with rt._lock:
        rt.workflows.add(workflow)
    session.touch()
    rt.events.publish("session_updated", session)


def _has_agent_above(span: GenAISpan, batch: dict[str, tuple[GenAISpan, Step | None]]) -> bool:
    """Whether an agent span of the batch is an ancestor of `span` (a bounded walk: the
    parent links are untrusted and may loop)."""
    parent = span.parent_span_id
    for _ in range(256):
        above = None if parent is None else batch.get(parent)
        if above is None:
            return False
        if above[1] is not None and above[1].kind == "agent":
            return True
        parent = above[0].parent_span_id
    return False


def _add_metadata(record: SpanRecord, raw: Any) -> None:
    """OpenInference `metadata` (JSON text) on a recorded span, bounded in keys and size."""
    value = raw
    if isinstance(raw, str):
        if len(raw) > _METADATA_TEXT:
            value = raw[:METADATA_VALUE_CHARS]
        else:
            with contextlib.suppress(ValueError, RecursionError):
                value = json.loads(raw)
    if isinstance(value, dict):
        kept = {
            str(k)[:64]: bounded(v, METADATA_VALUE_CHARS)
            for k, v in list(value.items())[:METADATA_KEYS]
        }
    else:
        kept = bounded(value, METADATA_VALUE_CHARS)
    record.attributes = {**record.attributes, "metadata": kept}


def _trim(table: OrderedDict[K, V], size: int) -> list[V]:
    """Drop the oldest entries beyond `size`; returns what was dropped."""
    dropped = []
    while len(table) > size:
        dropped.append(table.popitem(last=False)[1])
    return dropped


def _latency_ms(span: GenAISpan) -> float | None:
    if span.end_ns is None:
        return None
    return round((span.end_ns - span.start_ns) / 1e6, 3)


def sdk_attributes(span: ReadableSpan) -> Mapping[str, Any]:
    """A span's attributes for reading. The SDK keeps them in a `BoundedAttributes` whose
    mapping methods are Python code (a lookup through `span.attributes` costs a proxy, a
    lock-free `__getitem__` call and a `try`); its plain dict is read directly when it is
    there. Read only: the dict is the SDK's own (frozen once the span has ended)."""
    bounded = getattr(span, "_attributes", None)
    raw = getattr(bounded, "_dict", None)
    if type(raw) is dict:
        return raw
    return span.attributes or {}


def _error_of(span: ReadableSpan) -> str | None:
    status = span.status
    if status is not None and status.status_code is _STATUS_ERROR:
        return status.description or "error"
    return None


class _ServiceNames:
    """`service.name` of the last resource seen: a provider has one resource, so it is
    read once, not per span."""

    __slots__ = ("_name", "_resource")

    def __init__(self) -> None:
        self._resource: object = None
        self._name: str | None = None

    def of(self, resource: Any) -> str | None:
        if resource is not self._resource:
            service = None if resource is None else resource.attributes.get("service.name")
            self._name = service if isinstance(service, str) else None
            self._resource = resource
        return self._name


def _converted(
    span: ReadableSpan, attributes: Mapping[str, Any], ended: bool, services: _ServiceNames
) -> GenAISpan:
    context = span.get_span_context()
    parent = span.parent
    return GenAISpan(
        format(context.trace_id, "032x") if context else _NO_TRACE,
        format(context.span_id, "016x") if context else _NO_SPAN,
        None if parent is None else format(parent.span_id, "016x"),
        span.name,
        span.start_time or 0,
        span.end_time if ended else None,
        # at the start the SDK's own (live) dict is read at once, never kept past the end
        attributes if type(attributes) is dict else dict(attributes),
        _error_of(span) if ended else None,
        services.of(span.resource),
    )


_NO_TRACE = "0" * 32
_NO_SPAN = "0" * 16


def _processor_base() -> type:
    from opentelemetry.sdk.trace import SpanProcessor

    return SpanProcessor


def _status_error() -> Any:
    from opentelemetry.trace import StatusCode

    return StatusCode.ERROR


_STATUS_ERROR = _status_error()


class GenAISpanProcessor(_processor_base()):  # type: ignore[misc]
    """Add to a TracerProvider; the runtime sees every GenAI and OpenInference span and
    guards tool spans.

    Each SDK span is converted once: a span converted at its start (a tool, an agent run)
    is kept by its SDK span id and only its end, final attributes and status are added when
    it ends. Spans of neither dialect (HTTP, DB, ...) cost a few dict lookups; a trace's
    root among them is noted (it may wrap an agent run whose kind comes at its end).
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.mapper = runtime.otel_mapper()
        self._services = _ServiceNames()
        # SDK span id -> the open span: a GenAI tool span's guarded call, else the span as
        # converted at its start (bounded like the mapper's tables)
        self._started: OrderedDict[int, GenAISpan | ToolCall] = OrderedDict()
        self._lock = threading.Lock()
        # the last trace id seen and its text: a run's spans come one after another
        self._last_trace: tuple[int, str] = (-1, "")

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        attrs = sdk_attributes(span)
        if EXPORTED in attrs:  # the runtime's own export: already a session here
            return
        op = attrs.get("gen_ai.operation.name")
        kind = attrs.get(SPAN_KIND)
        if op is not None:
            if op not in _START_OPERATIONS and kind not in START_KINDS:
                return
        elif kind is not None:
            if kind not in START_KINDS:
                return
        elif not span.name.startswith("execute_tool "):
            if span.parent is None:  # may wrap a run whose spans say so only at their end
                context = span.get_span_context()
                self.mapper.note_root(
                    f"{context.trace_id:032x}", f"{context.span_id:016x}", span.name
                )
            return
        context = span.get_span_context()
        if kind is None and (op is None or op in TOOL_OPERATIONS):
            # a GenAI tool span: the explicit guard's path plus reading the span; raises
            # to refuse (the SDK then never ends the span, so nothing is kept for it)
            self._keep(context.span_id, self._guard_tool(span, attrs, context))
            return
        converted = _converted(span, attrs, False, self._services)
        self._keep(context.span_id, converted)
        try:
            self.mapper.on_start(converted)
        except BaseException:  # refused: the SDK never ends a span whose start raised
            self._started.pop(context.span_id, None)
            raise

    def _keep(self, key: int, entry: GenAISpan | ToolCall) -> None:
        """An open span until its end; the oldest are dropped beyond the bound (spans the
        SDK dropped without an end), a dropped tool call ends as an error."""
        started = self._started
        started[key] = entry  # one operation on a C OrderedDict: atomic, no lock needed
        if len(started) <= _TRACES_KEPT:
            return
        with self._lock:  # trims run one at a time
            stale = _trim(started, _TRACES_KEPT)
        for never_ended in stale:
            if not isinstance(never_ended, GenAISpan):
                never_ended.finish(RuntimeError("the tool span never ended"))

    def _guard_tool(self, span: Span, attrs: Mapping[str, Any], context: Any) -> ToolCall:
        """Guard a GenAI tool span at its start straight from the SDK span: its step read
        once (arguments parsed once), its session found, the explicit guard entered. No
        GenAISpan: the ids are formatted once each, the trace's once per run."""
        trace_id = context.trace_id
        last = self._last_trace
        if last[0] == trace_id:
            trace = last[1]
        else:
            trace = format(trace_id, "032x")
            self._last_trace = (trace_id, trace)
        get = attrs.get
        step = genai_tool_step(
            attrs,
            span.name,
            text(get("gen_ai.conversation.id")),
            text(get("gen_ai.agent.name")),
            text(get("enduser.id")) or text(get("user.id")),
            text(get("tenant.id")),
        )
        session = self.mapper.session_in(trace, self._services.of(span.resource), step)
        parent = span.parent
        call = tool_call_in(
            session,
            step,
            trace,
            format(context.span_id, "016x"),
            None if parent is None else format(parent.span_id, "016x"),
        )
        call.__enter__()  # raises SessionKilled / PolicyDenied / BudgetExceeded
        return call

    def on_end(self, span: ReadableSpan) -> None:
        attrs = sdk_attributes(span)
        if EXPORTED in attrs:
            return
        context = span.get_span_context()
        started = None
        if self._started and context is not None:  # (one atomic pop: no lock)
            started = self._started.pop(context.span_id, None)
        if isinstance(started, GenAISpan):  # converted at its start: add what its end tells
            started.end_ns = span.end_time
            started.attributes = attrs if type(attrs) is dict else dict(attrs)
            started.error = _error_of(span)
            with contextlib.suppress(GuardError):  # on_end records; it must never raise
                self.mapper.on_end(started)
            return
        if started is not None:  # a tool call guarded at its start: only its end is news
            with contextlib.suppress(GuardError):  # on_end records; it must never raise
                self._end_tool(started, span, attrs)
            return
        if (
            "gen_ai.operation.name" not in attrs
            and SPAN_KIND not in attrs
            and "agentops.outcome" not in attrs
            and not span.name.startswith("execute_tool ")
        ):
            if span.parent is None and context is not None:
                with contextlib.suppress(GuardError):
                    self.mapper.trace_root_ended(
                        f"{context.trace_id:032x}", f"{context.span_id:016x}", _error_of(span)
                    )
            return
        with contextlib.suppress(GuardError):  # on_end records; it must never raise
            self.mapper.on_end(_converted(span, attrs, True, self._services))

    def _end_tool(self, call: ToolCall, span: ReadableSpan, attrs: Mapping[str, Any]) -> None:
        """What `OTelMapper.on_end` does for a tool span it guarded, from the SDK span."""
        self.runtime.stats.otel_spans_total += 1
        error = _error_of(span)
        has_result, result = _result_in(attrs)
        if has_result:
            call.output = result
        call.finish(RuntimeError(error) if error else None)

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
