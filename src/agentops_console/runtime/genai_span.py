"""A span as read from OpenTelemetry, and what it means for a session whatever its dialect.

Both paths into the runtime produce a `GenAISpan` (the raw span: ids, times, attributes):
the in-process SpanProcessor (from SDK spans) and the OTLP/HTTP ingest (from protobuf or
JSON). Each semantic convention is read once, into a `Step` (what the span means: an
agent run, an LLM call, a tool call, a retrieval), by its own reader: the GenAI one here,
the OpenInference one in `runtime.openinference`. The mapping to sessions lives in one
place, `runtime.otel`, and sees Steps only, so a span carrying both dialects is one Step
and is counted once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Literal

#: What a span is to a session; `other` spans (OpenInference GUARDRAIL, EVALUATOR, ...)
#: are seen but not recorded: the wire format has no such span kind.
StepKind = Literal["agent", "llm", "tool", "retrieval", "other"]

LLM_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "embeddings"})
AGENT_OPERATIONS = frozenset({"invoke_agent", "create_agent"})
TOOL_OPERATIONS = frozenset({"execute_tool"})
RETRIEVAL_OPERATIONS = frozenset({"retrieval"})
_KIND_OF_OPERATION: dict[str, StepKind] = {
    **dict.fromkeys(LLM_OPERATIONS, "llm"),
    **dict.fromkeys(AGENT_OPERATIONS, "agent"),
    **dict.fromkeys(TOOL_OPERATIONS, "tool"),
    **dict.fromkeys(RETRIEVAL_OPERATIONS, "retrieval"),
}
#: GenAI tool attributes kept on the recorded span.
_TOOL_KEPT = ("gen_ai.tool.call.id", "gen_ai.tool.type", "gen_ai.tool.description")
#: A step that keeps no attributes shares this one read-only mapping.
NOTHING_KEPT: Mapping[str, Any] = MappingProxyType({})
_TOOL_PREFIX = "execute_tool "


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


@dataclass(slots=True)
class Step:
    """What one span means for a session, in no dialect. Values are raw (untrusted):
    the mapper checks counts and applies the retention rules when it keeps them."""

    kind: StepKind
    openinference: bool = False  # read (also) from OpenInference attributes
    session_id: str | None = None  # gen_ai.conversation.id / session.id
    agent: str | None = None  # an explicit agent name: gen_ai.agent.name / agent.name
    #: the workflow an agent step names (GenAI: its agent name; OpenInference: its agent
    #: name, else the span's name)
    label: str | None = None
    principal: str | None = None  # enduser.id / user.id
    tenant: str | None = None
    tool: str | None = None
    arguments: Any = None  # parsed when it is JSON text
    result: Any = None
    has_result: bool = False
    model: str | None = None
    provider: str | None = None
    input: Any = None  # what the run was asked (agent steps)
    output: Any = None  # what it answered
    metadata: Any = None  # raw `metadata` (OpenInference: JSON text)
    #: attributes for the recorded span (read only: may be the shared NOTHING_KEPT)
    kept: Mapping[str, Any] = field(default_factory=lambda: NOTHING_KEPT)

    def fill(self, other: Step) -> Step:
        """This step with its gaps filled from the same span read in another dialect."""
        for name in _FILLED:
            if getattr(self, name) not in (None, False):
                continue
            setattr(self, name, getattr(other, name))
        self.kept = {**other.kept, **self.kept}
        return self


_FILLED = tuple(f.name for f in fields(Step) if f.name not in ("kind", "kept"))


def text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def json_value(value: Any) -> Any:
    """Tool arguments and results arrive as JSON text by convention; keep the text if not."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except (ValueError, RecursionError):
            return value
    return value


def genai_step(span: GenAISpan) -> Step | None:
    """The span read with the OpenTelemetry GenAI conventions; None when it follows none."""
    attrs = span.attributes
    get = attrs.get
    op = get("gen_ai.operation.name")
    kind = _KIND_OF_OPERATION.get(op) if isinstance(op, str) else None
    if kind is None:
        if op is not None or not span.name.startswith(_TOOL_PREFIX):
            return None
        kind = "tool"
    # one read per attribute, positional construction: this runs for every GenAI span
    agent = text(get("gen_ai.agent.name"))
    session_id = text(get("gen_ai.conversation.id"))
    principal = text(get("enduser.id")) or text(get("user.id"))
    tenant = text(get("tenant.id"))
    if kind in {"llm", "agent"}:
        model = text(get("gen_ai.request.model")) or text(get("gen_ai.response.model"))
        provider = text(get("gen_ai.provider.name")) or text(get("gen_ai.system"))
        return Step(
            kind, False, session_id, agent, agent, principal, tenant, None, None, None, False,
            model, provider,
        )  # fmt: skip
    step = genai_tool_step(attrs, span.name, session_id, agent, principal, tenant)
    step.kind = kind
    return step


def genai_tool_step(
    attrs: Mapping[str, Any],
    span_name: str,
    session_id: str | None,
    agent: str | None,
    principal: str | None,
    tenant: str | None,
) -> Step:
    """A GenAI tool span's step from its attributes and name: shared by `genai_step` and
    the span processor's guard, which reads the session keys itself. The arguments are
    parsed here, once; the guard and the retention rules both read that value."""
    get = attrs.get
    name = text(get("gen_ai.tool.name"))
    if name is None and span_name.startswith(_TOOL_PREFIX):
        name = span_name[len(_TOOL_PREFIX) :].strip() or None
    has_result, result = (
        (True, json_value(attrs["gen_ai.tool.call.result"]))
        if "gen_ai.tool.call.result" in attrs
        else (False, None)
    )
    kept = NOTHING_KEPT
    for key in _TOOL_KEPT:
        if key in attrs:
            kept = {k: attrs[k] for k in _TOOL_KEPT if k in attrs}
            break
    return Step(
        "tool", False, session_id, agent, agent, principal, tenant, name,
        json_value(get("gen_ai.tool.call.arguments")), result, has_result, kept=kept,
    )  # fmt: skip


def genai_result(attrs: Mapping[str, Any]) -> tuple[bool, Any]:
    """(whether there is one, the value) of a GenAI tool span's result."""
    if "gen_ai.tool.call.result" in attrs:
        return True, json_value(attrs["gen_ai.tool.call.result"])
    return False, None
