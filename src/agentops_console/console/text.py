"""Untrusted text made safe to show: the console's one sanitizer.

Agents choose their names, workflows, principals, tool arguments, outputs and error
texts, so none of that may reach the terminal as a control sequence. `clean()` replaces
every character a terminal could act on, or that hides or reorders text, with a visible
escape (`\\x1b`, `\\u202e`), which neutralises CSI, OSC (BEL or ST ended), DCS, APC, PM
and SOS whole (their introducer is a control character), and cuts long values with an
ellipsis so a 100 KB name costs what a short one does.

`sanitized()` applies it to every string of a protocol object; the store calls it where
agent data enters, so widgets, titles, toasts and modals only ever see clean text. Rich
`Text` is never parsed as markup, so `[bold]` stays those characters.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from itertools import islice
from typing import Any, TypeVar

from pydantic import BaseModel
from rich.text import Text

#: Longest string the console keeps from an agent, per field (names, messages, JSON strings).
MAX_FIELD = 500
#: Deepest and widest JSON (tool arguments, outputs) kept; beyond is shown as "…".
MAX_JSON_DEPTH = 12
MAX_JSON_ITEMS = 100
ELLIPSIS = "…"

# What a terminal acts on or what hides / reorders text, by Unicode category:
# Cc (C0, DEL, C1: ESC, CSI U+009B, OSC U+009D, DCS U+0090, APC/PM/SOS ...), Cf (bidi
# embeddings, overrides, isolates and marks U+200E/U+200F/U+061C, zero-width characters,
# word joiners, BOM, interlinear annotations, tag characters), Zl / Zp (line and
# paragraph separators) and Cs (lone surrogates, which would also break the UTF-8 output).
# Listed, not computed from unicodedata at import, so the console starts fast;
# tests/console/test_console_text.py checks the list against unicodedata.
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e"
    "\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\ud800-\udfff"
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0001\U000e0020-\U000e007f]"
)

T = TypeVar("T")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def cut(text: str, limit: int | None) -> str:
    """At most `limit` characters, the last one an ellipsis when something was cut."""
    if limit is None or len(text) <= limit:
        return text
    return text[: max(0, limit - 1)] + ELLIPSIS


def clean(value: object, limit: int | None = MAX_FIELD) -> str:
    """A one-line printable string: unsafe characters become visible escapes."""
    text = cut(value if isinstance(value, str) else str(value), limit)
    if text.isprintable():  # the usual case, checked in C
        return text
    return _UNSAFE.sub(_escape, text)


def sanitized(value: T) -> T:
    """`value` with every string in it cleaned (models, lists, dicts and their keys);
    the same object when nothing needed cleaning, so the usual event costs no copy."""
    return _safe(value, 0)  # type: ignore[no-any-return]


#: Values with no string inside: skipped without a call (most fields of most events).
_ATOMS = (int, float, bool, type(None), datetime)


def _safe(value: Any, depth: int) -> Any:
    if type(value) is str:
        return value if len(value) <= MAX_FIELD and value.isprintable() else clean(value)
    if isinstance(value, _ATOMS):
        return value
    if isinstance(value, BaseModel):
        changed: dict[str, Any] = {}
        for name, old in value.__dict__.items():  # the fields, without pydantic's lookup
            if isinstance(old, _ATOMS):
                continue
            new = _safe(old, depth)
            if new is not old:
                changed[name] = new
        return value.model_copy(update=changed) if changed else value
    if isinstance(value, str):  # a str subclass
        return clean(value)
    if isinstance(value, (list, dict)):
        if depth >= MAX_JSON_DEPTH:
            return ELLIPSIS
        return _safe_container(value, depth + 1)
    return value


def _safe_container(value: list[Any] | dict[Any, Any], depth: int) -> Any:
    if isinstance(value, list):
        # a list of models is the protocol's structure (spans, flags): kept whole
        keep = len(value) if value and isinstance(value[0], BaseModel) else MAX_JSON_ITEMS
        items = [_safe(item, depth) for item in value[:keep]]
        if len(value) > keep:
            items.append(f"{ELLIPSIS} {len(value) - keep} more")
        same = len(items) == len(value) and all(a is b for a, b in zip(items, value, strict=True))
        return value if same else items
    first = next(iter(value.values()), None)
    keep = len(value) if isinstance(first, BaseModel) else MAX_JSON_ITEMS
    pairs = [(_safe(key, depth), _safe(item, depth)) for key, item in islice(value.items(), keep)]
    if len(value) > keep:
        pairs.append((ELLIPSIS, f"{len(value) - keep} more"))
    same = len(pairs) == len(value) and all(
        k is k0 and v is v0 for (k, v), (k0, v0) in zip(pairs, value.items(), strict=True)
    )
    return value if same else dict(pairs)


def error_line(exc: BaseException, limit: int = 300) -> str:
    """An error quoted from an endpoint (or anything else) as one clean line."""
    return clean(" ".join(str(exc).split()) or type(exc).__name__, limit)


def shown(value: str, style: str = "", limit: int | None = None) -> Text:
    """Already clean text (from the store) as Text: never markup, cut to `limit`."""
    return Text(cut(value, limit), style=style, no_wrap=True, end="")


def json_text(value: Any, limit: int | None = 2000) -> str:
    """Clean JSON (tool arguments, outputs) as one line of JSON text. Backslashes are
    shown single, as in every other cell, so an escaped ESC reads `\x1b`, not `\\x1b`."""
    try:
        dumped = json.dumps(value, ensure_ascii=False, sort_keys=True, default=repr)
    except (TypeError, ValueError):
        dumped = repr(value)
    return cut(dumped.replace("\\\\", "\\"), limit)


def literal(value: object, style: str = "", limit: int | None = None) -> Text:
    """Text that did not come through the store (e.g. `agentops status`), cleaned here."""
    return Text(clean(value, limit), style=style, no_wrap=True, end="")
