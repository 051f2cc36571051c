"""OpenInference spans (LangChain/LangGraph, LlamaIndex, CrewAI, DSPy, ... instrumentors)
read into the dialect-neutral `Step`.

Attribute names are those of `openinference-semantic-conventions` (0.1.42). Two things
differ from the GenAI conventions and matter here:
- `tool.parameters` is the tool's JSON *schema*, not the call's arguments: a TOOL span's
  arguments are its `input.value` (JSON when `input.mime_type` says so);
- instrumentors built on LangChain's callbacks set every attribute, the span kind
  included, when the span *ends*: such spans are recognised at the end only.
"""

from __future__ import annotations

import re
from typing import Any

from .genai_span import GenAISpan, Step, StepKind, json_value, text

SPAN_KIND = "openinference.span.kind"
JSON_MIME = "application/json"
_KINDS: dict[str, StepKind] = {
    "AGENT": "agent",
    "CHAIN": "agent",
    "LLM": "llm",
    "EMBEDDING": "llm",
    "TOOL": "tool",
    "RETRIEVER": "retrieval",
    "RERANKER": "other",
    "GUARDRAIL": "other",
    "EVALUATOR": "other",
    "PROMPT": "other",
    "DECISION": "other",
    "UNKNOWN": "other",
}
#: Kinds that matter when a span starts: runs (they open the session) and tools (guarded).
START_KINDS = frozenset({"AGENT", "CHAIN", "TOOL"})
#: Documents of one retrieval kept on its span at most.
MAX_DOCUMENTS = 50
#: JSON text longer than this is kept as text (the retention rules cut it anyway).
_MAX_PARSED = 1 << 20
_DOCUMENT = re.compile(r"retrieval\.documents\.(\d{1,6})\.document\.(\w{1,32})$")
_TOOL_KEPT = {"tool.description": "tool.description", "tool.id": "tool.id"}


def _io(attrs: dict[str, Any], prefix: str) -> Any:
    """`input.value` / `output.value`, parsed when its mime type says JSON."""
    value = attrs.get(f"{prefix}.value")
    if (
        isinstance(value, str)
        and attrs.get(f"{prefix}.mime_type") == JSON_MIME
        and len(value) <= _MAX_PARSED
    ):
        return json_value(value)
    return value


def openinference_step(span: GenAISpan) -> Step | None:
    """The span read with the OpenInference conventions; None without a span kind."""
    attrs = span.attributes
    raw = attrs.get(SPAN_KIND)
    kind = _KINDS.get(raw.upper()) if isinstance(raw, str) else None
    if kind is None:
        return None
    agent = text(attrs.get("agent.name"))
    step = Step(
        kind,
        openinference=True,
        session_id=text(attrs.get("session.id")),
        agent=agent,
        principal=text(attrs.get("user.id")),
        tenant=text(attrs.get("tenant.id")),
        metadata=attrs.get("metadata"),
    )
    if kind == "agent":
        step.label = agent or span.name or None
        step.input = _io(attrs, "input")
        step.output = _io(attrs, "output")
    if kind in {"llm", "agent"}:
        step.model = (
            text(attrs.get("llm.model_name"))
            or text(attrs.get("llm.response.model_name"))
            or text(attrs.get("llm.request.model_name"))
            or text(attrs.get("embedding.model_name"))
        )
        step.provider = text(attrs.get("llm.provider")) or text(attrs.get("llm.system"))
    elif kind == "tool":
        step.tool = text(attrs.get("tool.name")) or span.name or None
        arguments = _io(attrs, "input")
        if arguments is None:
            arguments = json_value(attrs.get("tool_call.function.arguments"))
        step.arguments = arguments
        step.kept = {v: attrs[k] for k, v in _TOOL_KEPT.items() if k in attrs}
        _result(step, attrs)
    elif kind == "retrieval":
        step.tool = span.name or "retriever"
        step.arguments = _io(attrs, "input")
        documents = _documents(attrs)
        if documents:
            step.result, step.has_result = documents, True
        else:
            _result(step, attrs)
    return step


def _result(step: Step, attrs: dict[str, Any]) -> None:
    step.has_result, step.result = openinference_result(attrs)


def openinference_result(attrs: dict[str, Any]) -> tuple[bool, Any]:
    """(whether there is one, the value) of an OpenInference TOOL span's result."""
    if "output.value" in attrs:
        return True, _io(attrs, "output")
    return False, None


def _documents(attrs: dict[str, Any]) -> list[dict[str, Any]]:
    """`retrieval.documents.N.document.{id,content,score,metadata}` as a list, in order."""
    found: dict[int, dict[str, Any]] = {}
    for key, value in attrs.items():
        if not key.startswith("retrieval.documents."):
            continue
        match = _DOCUMENT.match(key)
        if match is None:
            continue
        index = int(match.group(1))
        if index < MAX_DOCUMENTS:
            field = match.group(2)
            found.setdefault(index, {})[field] = json_value(value) if field == "metadata" else value
    return [found[i] for i in sorted(found)]
