"""Evaluation results as OpenTelemetry `gen_ai.evaluation.result` events, parented to the
evaluated session's `invoke_agent` span, for backends that show them.

The GenAI semantic conventions model the result as an event that SHOULD be parented to
the span it evaluates. On a trace pipeline it is emitted as a zero-duration child span of
that name, its attributes the event's: `gen_ai.evaluation.name`, `.score.value`,
`.score.label`, `.explanation` (and `error.type` for a crash or timeout). The session's
span only exists while its session runs (runtime/otel_export.py lets it go at the end),
so a span processor on the provider keeps the root's context of each harness session
until its result is emitted; the runtime itself is not touched.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

if TYPE_CHECKING:
    from opentelemetry.trace import SpanContext

    from .replay import SessionDiff
    from .scoring import CaseResult

#: The event's name in the semantic conventions; also the emitted span's name.
EVENT = "gen_ai.evaluation.result"
#: What a suite case and a replayed session are scored as.
CASE_EVALUATION = "task_success"
REPLAY_EVALUATION = "replay_regression"
_ROOT_OPERATION = "invoke_agent"


class _RootSpans(SpanProcessor):
    """A SpanProcessor keeping the context of each ended `invoke_agent` span whose
    conversation id (the session id) starts with `prefix` (this run's sessions only)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.contexts: dict[str, SpanContext] = {}
        self.lock = threading.Lock()
        super().__init__()

    def on_end(self, span: ReadableSpan) -> None:
        attributes = span.attributes or {}
        session = attributes.get("gen_ai.conversation.id")
        context = span.get_span_context()
        if (
            attributes.get("gen_ai.operation.name") == _ROOT_OPERATION
            and isinstance(session, str)
            and session.startswith(self.prefix)
            and context is not None
        ):
            with self.lock:
                self.contexts[session] = context


class EvaluationEvents:
    """Emits one result per evaluated session on `provider` (an SDK TracerProvider: the
    root spans are found through its span processors)."""

    def __init__(self, provider: Any, session_prefix: str, *, suite: str) -> None:
        if not callable(getattr(provider, "add_span_processor", None)):
            raise ValueError(
                "OpenTelemetry evaluation events need an SDK TracerProvider"
                " (opentelemetry.sdk.trace.TracerProvider)"
            )
        self.provider = provider
        self.suite = suite
        self.roots = _RootSpans(session_prefix)
        provider.add_span_processor(self.roots)
        self.tracer = provider.get_tracer("agentops_console.evaluation")
        self.emitted = 0
        self.orphans = 0

    def case(self, session_id: str, result: CaseResult) -> None:
        """A suite case: passed or failed, the failed expectations as the explanation."""
        explanation = "all expectations held" if result.passed else "; ".join(result.failures)
        error = next((k for k in result.failures if k in ("crash", "timeout")), None)
        self._emit(
            session_id,
            {
                "gen_ai.evaluation.name": CASE_EVALUATION,
                "gen_ai.evaluation.score.value": 1.0 if result.passed else 0.0,
                "gen_ai.evaluation.score.label": "pass" if result.passed else "fail",
                "gen_ai.evaluation.explanation": explanation,
                "agentops.evaluation.case": result.case_id,
                "agentops.evaluation.category": result.category,
            },
            error,
        )

    def replay(self, session_id: str, diff: SessionDiff) -> None:
        """A replayed session: a material regression scores 0, drift or none 1."""
        label = "regression" if diff.material else ("identical" if diff.identical else "drift")
        found = [*diff.regressions, *(f"drift:{d}" for d in diff.drift)]
        self._emit(
            session_id,
            {
                "gen_ai.evaluation.name": REPLAY_EVALUATION,
                "gen_ai.evaluation.score.value": 0.0 if diff.material else 1.0,
                "gen_ai.evaluation.score.label": label,
                "gen_ai.evaluation.explanation": "; ".join(found) or "same as the recording",
                "agentops.evaluation.replay_of": diff.session_id,
            },
            None,
        )

    def _emit(self, session_id: str, attributes: dict[str, Any], error: str | None) -> None:
        from opentelemetry import trace

        with self.roots.lock:
            root = self.roots.contexts.pop(session_id, None)
        if root is None:  # the session never reached the exporter (nothing to parent to)
            self.orphans += 1
            return
        attributes = {
            **attributes,
            "gen_ai.conversation.id": session_id,
            "agentops.evaluation.suite": self.suite,
        }
        if error is not None:
            attributes["error.type"] = error
        now = time.time_ns()
        span = self.tracer.start_span(
            EVENT,
            context=trace.set_span_in_context(trace.NonRecordingSpan(root)),
            attributes=attributes,
            start_time=now,
        )
        span.add_event(EVENT, attributes, timestamp=now)
        span.end(end_time=now)
        self.emitted += 1

    def close(self) -> None:
        """Flush what was emitted (an exporter may batch)."""
        self.provider.force_flush()


def export_provider() -> tuple[Any, bool]:
    """The provider `--otel-export` sends to, and whether the caller must shut it down:
    the global one when it is an SDK provider (set by `opentelemetry-instrument` or by the
    target's package), else a new one with the OTLP/HTTP exporter, configured by the
    standard OTEL_EXPORTER_OTLP_* variables. ValueError when neither is available."""
    from opentelemetry import trace

    current = trace.get_tracer_provider()
    if callable(getattr(current, "add_span_processor", None)):
        return current, False
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        raise ValueError(
            "--otel-export needs opentelemetry-exporter-otlp-proto-http installed, or an SDK"
            " TracerProvider set globally (opentelemetry-instrument)"
        ) from None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "agentops-eval"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider, True
