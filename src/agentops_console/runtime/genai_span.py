"""A neutral, finished-or-started span as read from OpenTelemetry.

Both paths into the runtime produce it: the in-process SpanProcessor (from SDK spans) and
the OTLP/HTTP ingest (from protobuf or JSON). The mapping to sessions lives in one place,
`runtime.otel`, whichever path a span came by.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class GenAISpan:
    trace_id: str  # 32 lowercase hex digits
    span_id: str  # 16 lowercase hex digits
    parent_span_id: str | None
    name: str
    start_ns: int
    end_ns: int | None  # None while the span is still open (on_start)
    attributes: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # status description when the span's status is ERROR
    service_name: str | None = None  # resource attribute service.name

    @property
    def operation(self) -> str | None:
        op = self.attributes.get("gen_ai.operation.name")
        return op if isinstance(op, str) else None
