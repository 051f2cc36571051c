"""What of an agent's values may leave the process: retention rules, size bound, redaction.

Every argument, tool output, task input and final answer passes through `Retention` once,
when the runtime first keeps it (the span is built, `call.output` is set, `s.input(...)`
is called), so what the session holds is already what may be shown: the endpoint, the
event stream, approvals and the OpenTelemetry export all read that copy and never the
agent's raw value. The guard itself (Cedar, the retry counter, the schema check) reads the
raw arguments the agent passed, in memory, before this copy exists.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from .spans import jsonable

if TYPE_CHECKING:
    from .config import RuntimeConfig

ValueKind = Literal["arguments", "output", "input"]

#: What stands for a value whose redaction hook raised: never the raw value.
REDACTION_FAILED = "[redaction failed]"


@dataclass(frozen=True, slots=True)
class RedactContext:
    """Where a value comes from, for a hook that redacts per tool, workflow or tenant."""

    agent: str
    session_id: str
    workflow: str
    principal: str
    tenant: str | None
    tool: str | None = None


Redactor = Callable[[ValueKind, Any, RedactContext], Any]


def cut_marker(dropped: int) -> str:
    return f"…[cut {dropped} chars]"


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
#: JSON characters a scalar can take at most: a string's character escapes to 6 (\uXXXX),
#: a number's repr stays under 32, plus quotes, colon and comma.
_ESCAPE = 6
_SCALAR = 32


def _surely_fits(value: dict[str, Any], limit: int) -> bool:
    """A flat object of scalars (the usual tool arguments) whose JSON cannot exceed `limit`
    even if every character escaped: no need to serialize it on the hot path."""
    if len(value) > 64:
        return False
    size = 2
    for key, item in value.items():
        if isinstance(item, str):
            size += _ESCAPE * (len(key) + len(item)) + 6
        elif item is None or isinstance(item, bool | int | float):
            size += _ESCAPE * len(key) + _SCALAR
        else:
            return False
    return size <= limit


def bounded(value: Any, limit: int) -> Any:
    """The value as JSON, or, when its JSON text is longer than `limit` characters, that
    text cut to `limit` with a marker (a string then: structure cannot be cut safely)."""
    value = jsonable(value)
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit] + cut_marker(len(value) - limit)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict) and _surely_fits(value, limit):
        return value
    text = _ENCODER.encode(value)
    if len(text) <= limit:
        return value
    return text[:limit] + cut_marker(len(text) - limit)


def as_text(value: Any) -> str:
    """A task input or answer as text: a string as it is, anything else as its JSON."""
    value = jsonable(value)
    if isinstance(value, str):
        return value
    return _ENCODER.encode(value)


class Retention:
    """Applies `[record]` (keep_arguments, keep_outputs, keep_inputs, max_value_chars) and
    the `redact` hook; counts hooks that raised (`agentops_redaction_failures` on /metrics)."""

    def __init__(self, config: RuntimeConfig, redact: Redactor | None = None) -> None:
        if redact is not None and not callable(redact):
            raise TypeError("redact must be a callable (kind, value, context) -> value")
        self.keep: dict[ValueKind, bool] = {
            "arguments": config.keep_arguments,
            "output": config.keep_outputs,
            "input": config.keep_inputs,
        }
        self.limit = config.max_value_chars
        self.redact = redact
        self.failures = 0

    def apply(self, kind: ValueKind, value: Any, context: Callable[[], RedactContext]) -> Any:
        """What may be kept of `value`: None when the rules drop it, else the redacted,
        size-bounded JSON value. `context` is called only when a hook needs it."""
        if value is None or not self.keep[kind]:
            return None
        if self.redact is not None:
            try:
                value = self.redact(kind, value, context())
            except Exception:  # the hook's bug must not leak the value it was meant to hide
                self.failures += 1
                return REDACTION_FAILED
        return bounded(value, self.limit)

    def text(self, kind: ValueKind, value: Any, context: Callable[[], RedactContext]) -> str | None:
        """Like `apply`, for the session's input and final answer, kept as text."""
        kept = self.apply(kind, value, context)
        return None if kept is None else as_text(kept)
