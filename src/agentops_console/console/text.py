"""Untrusted text made safe to show: agent-provided strings become literal `rich.text.Text`.

Agents choose their names, workflows, principals, tool arguments and outputs, so none of
that may reach the screen as Rich markup or as terminal control sequences. `literal()`
never parses markup and replaces every control character (ESC included) with a visible
`\\xNN` escape, so `[bold red]` shows as those characters and `\\x1b[31m` as `\\x1b[31m`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from rich.text import Text

# C0 controls, DEL, C1 controls, and the Unicode bidi/line separators that can reorder
# or break lines on a terminal.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean(value: object, limit: int | None = None) -> str:
    """A one-line printable string: control characters become visible escapes."""
    text = value if isinstance(value, str) else str(value)
    if limit is not None and len(text) > limit:
        text = text[: max(0, limit - 1)] + "…"
    return _CONTROL.sub(_escape, text)


def literal(value: object, style: str = "", limit: int | None = None) -> Text:
    """Untrusted text as a Text object: never parsed as markup, never an escape sequence."""
    return Text(clean(value, limit), style=style, no_wrap=True, end="")


def literal_json(value: Any, limit: int | None = 2000) -> Text:
    """Tool arguments or outputs shown exactly as data (JSON), control characters escaped."""
    try:
        dumped = json.dumps(value, ensure_ascii=False, sort_keys=True, default=repr)
    except (TypeError, ValueError):
        dumped = repr(value)
    return literal(dumped, limit=limit)
