"""Untrusted text made safe to show: the one cleaner every context uses.

Agents choose their names, workflows, principals, tool arguments, outputs and error texts,
and endpoints choose their error messages, so none of that may reach a terminal, a log
line or the audit log as a control sequence. `clean()` replaces every character a terminal
could act on, or that hides or reorders text, with a visible escape (`\\x1b`, `\\u202e`),
which neutralises CSI, OSC (BEL or ST ended), DCS, APC, PM and SOS whole (their introducer
is a control character), and cuts long values with an ellipsis so a 100 KB name costs what
a short one does. `one_line()` first folds whitespace (newlines included) to single spaces,
for error texts and reasons. `clean_block()` keeps newlines and tabs, for a CLI's
multi-line output.

Standard library only (`re`): the runtime, governance, the watcher, the CLI and the console
all import it. Each caller passes its own limit, kept as a named constant where it is used.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError

ELLIPSIS = "…"

#: What a terminal acts on or what hides / reorders text, by Unicode category: Cc (C0, DEL,
#: C1: ESC, CSI U+009B, OSC U+009D, DCS U+0090, APC/PM/SOS ...), Cf (bidi embeddings,
#: overrides, isolates and marks U+200E/U+200F/U+061C, zero-width characters, word joiners,
#: BOM, interlinear annotations, tag characters), Zl / Zp (line and paragraph separators)
#: and Cs (lone surrogates, which would also break UTF-8 output). `str.isprintable()` is
#: False for all of them, so names.py's validation rejects a superset of these.
UNSAFE_CATEGORIES = ("Cc", "Cf", "Cs", "Zl", "Zp")

# Listed, not computed from unicodedata at import, so every command starts fast;
# tests/protocol/test_text.py checks the list against unicodedata.
_RANGES = (
    "\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e"
    "\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\ud800-\udfff"
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0001\U000e0020-\U000e007f"
)
_UNSAFE = re.compile(f"[\x00-\x1f\x7f-\x9f{_RANGES}]")
#: The same without newline and tab, which a multi-line block keeps.
_UNSAFE_IN_BLOCK = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_RANGES}]")


#: Escapes made so far, by character (at most the ~2,500 listed): hostile text repeats a few.
_ESCAPES: dict[str, str] = {}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if (escaped := _ESCAPES.get(char)) is None:
        code = ord(char)
        if code < 0x100:
            escaped = f"\\x{code:02x}"
        else:
            escaped = f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
        _ESCAPES[char] = escaped
    return escaped


def cut(text: str, limit: int | None) -> str:
    """At most `limit` characters, the last one an ellipsis when something was cut."""
    if limit is None or len(text) <= limit:
        return text
    return text[: max(0, limit - 1)] + ELLIPSIS


def clean(value: object, limit: int | None) -> str:
    """A one-line printable string: cut to `limit` (None: no cut), then unsafe characters
    become visible escapes (so the result can be up to 10 times `limit` long)."""
    text = cut(value if isinstance(value, str) else str(value), limit)
    if text.isprintable():  # the usual case, checked in C
        return text
    return _UNSAFE.sub(_escape, text)


def one_line(value: object, limit: int | None, empty: str = "") -> str:
    """Whitespace (newlines, tabs, runs of spaces) folded to single spaces, then `clean`;
    `empty` stands in for a value with nothing left (e.g. an exception's type name)."""
    return clean(" ".join(str(value).split()) or empty, limit)


def error_line(exc: BaseException, limit: int | None) -> str:
    """An exception (often quoting an endpoint or an agent) as one clean line."""
    return one_line(exc, limit, type(exc).__name__)


def validation_line(exc: ValidationError, whole: str, skip: int = 0) -> str:
    """A pydantic ValidationError's first problem as one clean line, `field.path: message`
    (`whole` names the value when the problem is the value itself); the path's first `skip`
    parts are left out, for a caller that names them itself. (A path may hold an agent's
    dict key, so it is cleaned like any error text.)"""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"][skip:]) or whole
    return one_line(f"{where}: {first['msg']}", None)


def clean_block(value: object, limit: int | None = None) -> str:
    """Like `clean`, but newlines and tabs stay: a table or report of several lines."""
    text = cut(value if isinstance(value, str) else str(value), limit)
    if text.isprintable():
        return text
    return _UNSAFE_IN_BLOCK.sub(_escape, text)
