"""Untrusted text made safe to show in the console.

Agents choose their names, workflows, principals, tool arguments, outputs and error
texts, so none of that may reach the terminal as a control sequence. The cleaning itself
is `agentops_console.protocol.text` (shared with the runtime, governance, the watcher and
the CLI); this module adds the console's per-field limit and `sanitized()`, which applies
it to every string of a protocol object; the store calls it where agent data enters, so
widgets, titles, toasts and modals only ever see clean text. Rich `Text` is never parsed
as markup, so `[bold]` stays those characters.
"""

from __future__ import annotations

import json
import types
from datetime import datetime
from itertools import islice
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel
from rich.text import Text

from ..protocol import text as _text
from ..protocol.text import ELLIPSIS, cut

__all__ = [
    "ELLIPSIS",
    "MAX_FIELD",
    "clean",
    "cut",
    "error_line",
    "json_text",
    "literal",
    "sanitized",
    "shown",
]

#: Longest string the console keeps from an agent, per field (names, messages, JSON strings).
MAX_FIELD = 500
#: Deepest and widest JSON (tool arguments, outputs) kept; beyond is shown as "…".
MAX_JSON_DEPTH = 12
MAX_JSON_ITEMS = 100
#: An error quoted in a toast or status line.
ERROR_CHARS = 300

T = TypeVar("T")


def clean(value: object, limit: int | None = MAX_FIELD) -> str:
    """`protocol.text.clean` with the console's per-field limit as the default."""
    return _text.clean(value, limit)


def sanitized(value: T) -> T:
    """`value` with every string in it cleaned (models, lists, dicts and their keys);
    the same object when nothing needed cleaning, so the usual event costs no copy."""
    return _safe(value, 0)  # type: ignore[no-any-return]


#: Values with no string inside: skipped without a call (most fields of most events).
_ATOMS = (int, float, bool, type(None), datetime)
#: The same, as exact types: a set lookup instead of an isinstance walk per field.
_ATOM_TYPES = frozenset(_ATOMS)


def _safe(value: Any, depth: int) -> Any:
    if type(value) is str:
        if len(value) <= MAX_FIELD and value.isprintable():
            return value
        return _text.clean(value, MAX_FIELD)
    if isinstance(value, _ATOMS):
        return value
    if isinstance(value, BaseModel):
        if _is_clean(value, depth):  # the usual event: nothing to clean, found quickly
            return value
        changed: dict[str, Any] = {}
        for name, old in value.__dict__.items():  # the fields, without pydantic's lookup
            kind = type(old)
            if kind is str:  # inline: most fields are short clean strings, no call for them
                if len(old) <= MAX_FIELD and old.isprintable():
                    continue
            elif kind in _ATOM_TYPES or ((kind is list or kind is dict) and not old):
                continue  # nothing to clean (an empty list or dict stays the same object)
            elif isinstance(old, _ATOMS):
                continue
            new = _safe(old, depth)
            if new is not old:
                changed[name] = new
        return value.model_copy(update=changed) if changed else value
    if isinstance(value, str):  # a str subclass
        return _text.clean(value, MAX_FIELD)
    if isinstance(value, (list, dict)):
        if depth >= MAX_JSON_DEPTH:
            return ELLIPSIS
        return _safe_container(value, depth + 1)
    if isinstance(value, (tuple, set, frozenset)):  # a typed field's (JSON makes none)
        if depth >= MAX_JSON_DEPTH:
            return ELLIPSIS
        items = list(value)
        cleaned = _safe_container(items, depth + 1)
        if cleaned is items:
            return value
        if isinstance(value, tuple):
            return tuple(cleaned)
        return set(cleaned) if isinstance(value, set) else frozenset(cleaned)
    return value


#: How a model field can hold text, as `_plan` finds from its annotation.
_STR, _MODEL, _MODELS, _ANY = range(4)
#: Per model class: (field, how, model class) for the fields that can hold text at all.
_Plan = tuple[tuple[str, int, Any], ...]
_PLANS: dict[type[BaseModel], _Plan] = {}
_NO_TEXT = (int, float, bool, datetime, type(None))


def _plan(cls: type[BaseModel]) -> _Plan:
    """The fields of `cls` that can hold a string, from their annotations: numbers,
    times and literals (validated to one of their clean values) are left out, so a
    session summary's budget, counters and status are never looked at."""
    plan = _PLANS.get(cls)
    if plan is None:
        # a model that contains itself meets this while it is planned: every field checked
        _PLANS[cls] = tuple((name, _ANY, None) for name in cls.model_fields)
        _PLANS[cls] = plan = tuple(
            (name, *how)
            for name, info in cls.model_fields.items()
            if (how := _how(info.annotation)) is not None
        )
    return plan


def _how(annotation: Any) -> tuple[int, Any] | None:
    """None when a value of this type holds no text; else how to check it."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _how(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        found = [how for arg in get_args(annotation) if (how := _how(arg)) is not None]
        return None if not found else found[0] if len(found) == 1 else (_ANY, None)
    if origin is Literal:
        clean_values = all(
            type(v) in _NO_TEXT or (type(v) is str and len(v) <= MAX_FIELD and v.isprintable())
            for v in get_args(annotation)
        )
        return None if clean_values else (_ANY, None)
    if annotation in _NO_TEXT:
        return None
    if annotation is str:
        return (_STR, None)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return (_MODEL, annotation) if _plan(annotation) else None
    if origin is list:
        (item,) = get_args(annotation) or (Any,)
        how = _how(item)
        if how is None:
            return None
        return (_MODELS, item) if how[0] == _MODEL else (_ANY, None)
    return (_ANY, None)


def _is_clean(value: BaseModel, depth: int) -> bool:
    """True when `_safe` would return `value` itself: every field that can hold text
    (`_plan`) holds clean text. Exact types only; anything else is left to `_safe`'s
    full walk (it re-checks, and copies what it cleans)."""
    fields = value.__dict__
    for name, how, model in _plan(type(value)):
        item = fields.get(name)
        if item is None:
            continue
        if how == _STR:
            if type(item) is not str or len(item) > MAX_FIELD or not item.isprintable():
                return False
        elif how == _MODEL:
            if type(item) is not model or not _is_clean(item, depth):
                return False
        elif how == _MODELS:
            if type(item) is not list or (item and depth + 1 >= MAX_JSON_DEPTH):
                return False
            for one in item:
                if type(one) is not model or not _is_clean(one, depth + 1):
                    return False
        elif _safe(item, depth) is not item:
            return False
    return True


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


def error_line(exc: BaseException, limit: int = ERROR_CHARS) -> str:
    """An error quoted from an endpoint (or anything else) as one clean line."""
    return _text.error_line(exc, limit)


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
