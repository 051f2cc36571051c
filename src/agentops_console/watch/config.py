"""watch.toml: `[[sink]]` and `[[rule]]` tables (docs/watch.md), read once at startup.

Every mistake is one line naming the file and the line: TOML syntax errors carry their
own line; a bad sink or rule is located at its `[[sink]]` / `[[rule]]` header, or at the
offending key inside it. The watcher does not start with a broken file.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from .alerts import IncidentPolicy
from .errors import WatchConfigError
from .rules import THEN_TAGS, BudgetLimits, Rule, RuleBook, When
from .sinks.spec import (
    SINK_KINDS,
    AnySinkSpec,
    FileSpec,
    PagerDutySpec,
    Sink,
    SinkSpec,
    SlackSpec,
    WebhookSpec,
    build_sinks,
)

_SINK = TypeAdapter[AnySinkSpec](SinkSpec)
_TABLES = ("sink", "rule", "incidents")
_TAGS = frozenset((*SINK_KINDS, *THEN_TAGS))
_KEYS = sorted(
    {
        key
        for model in (
            Rule,
            When,
            BudgetLimits,
            WebhookSpec,
            SlackSpec,
            PagerDutySpec,
            FileSpec,
            IncidentPolicy,
        )
        for key in model.model_fields
    }
)


@dataclass(frozen=True, slots=True)
class WatchConfig:
    origin: str
    sinks: tuple[AnySinkSpec, ...] = ()
    rules: tuple[Rule, ...] = ()
    incidents: IncidentPolicy = field(default_factory=IncidentPolicy)

    def build_sinks(self, environ: Mapping[str, str] | None = None) -> list[Sink]:
        """The sinks with their secrets read (WatchConfigError if a variable is unset)."""
        return build_sinks(self.sinks, self.origin, environ)

    def rulebook(self) -> RuleBook:
        return RuleBook(self.rules)


def load_config(path: Path | str) -> WatchConfig:
    from ..governance.errors import BadInput
    from ..governance.tomlfile import read_text

    try:
        text = read_text(Path(path))
    except BadInput as exc:
        raise WatchConfigError(str(exc)) from None
    return parse_config(text, str(path))


def parse_config(text: str, origin: str) -> WatchConfig:
    from ..governance.errors import BadInput
    from ..governance.tomlfile import parse_toml

    try:
        data = parse_toml(text, origin)
    except BadInput as exc:
        raise WatchConfigError(str(exc)) from None
    where = _Locator(text, origin)
    for key in data:
        if key not in _TABLES:
            raise WatchConfigError(
                f"{where.key(key)}: unknown table or key {key!r};"
                " expected [[sink]] or [[rule]] (or one [incidents])"
            )
    sinks = [
        _item(where, "sink", i, raw, _SINK.validate_python)
        for i, raw in _items(where, data, "sink")
    ]
    rules = [
        _item(where, "rule", i, raw, Rule.model_validate) for i, raw in _items(where, data, "rule")
    ]
    _unique(where, "sink", [s.name or f"{s.kind}-{i}" for i, s in enumerate(sinks, start=1)])
    _unique(where, "rule", [r.name for r in rules])
    return WatchConfig(origin, tuple(sinks), tuple(rules), _incidents(where, data))


def _incidents(where: _Locator, data: dict[str, Any]) -> IncidentPolicy:
    """`[incidents]`: one table (cool-down, burst and unreachable thresholds, causes)."""
    raw = data.get("incidents", {})
    if not isinstance(raw, dict):
        raise WatchConfigError(f"{where.key('incidents')}: write [incidents] (one table)")
    try:
        return IncidentPolicy.model_validate(raw)
    except ValidationError as exc:
        errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        error = errors[0]
        path = [str(p) for p in error["loc"]]
        line = where.key(path[0]) if path else where.key("incidents")
        if line == where.origin:
            line = where.key("incidents")
        raise WatchConfigError(f"{line}: [incidents]: {_message(error, path)}") from None


def _items(where: _Locator, data: dict[str, Any], table: str) -> list[tuple[int, dict[str, Any]]]:
    raw = data.get(table, [])
    if not isinstance(raw, list):
        raise WatchConfigError(
            f"{where.key(table)}: write [[{table}]] (one table per {table}), not [{table}]"
        )
    for item in raw:
        if not isinstance(item, dict):
            raise WatchConfigError(f"{where.key(table)}: each {table} must be a table")
    return list(enumerate(raw))


def _item(where: _Locator, table: str, index: int, raw: dict[str, Any], validate: Any) -> Any:
    try:
        return validate(raw)
    except ValidationError as exc:
        # a typo'd key usually also makes a required one "missing": report the typo
        errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        error = errors[0]
        path = [str(p) for p in error["loc"] if not (isinstance(p, str) and p in _TAGS)]
        if error["type"].startswith("union_tag_"):
            path = [*path, "kind"]
        line = where.item(table, index, [p for p in path if not p.isdigit()])
        name = raw.get("name")
        label = f"{table} {index + 1}" + (f" ({name!r})" if isinstance(name, str) else "")
        raise WatchConfigError(f"{line}: {label}: {_message(error, path)}") from None


def _message(error: ErrorDetails, path: Sequence[str]) -> str:
    dotted = ".".join(path)
    kind = error["type"]
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(path[-1], _KEYS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown key {dotted!r}{hint}"
    if kind in ("missing", "union_tag_not_found"):
        return f"missing key {dotted!r}"
    if kind == "union_tag_invalid":
        tag = (error.get("ctx") or {}).get("tag")
        return f"unknown kind {tag!r}; use {', '.join(SINK_KINDS)}"
    text = str(error["msg"]).removeprefix("Value error, ")
    return f"{dotted}: {text}" if dotted else text


def _unique(where: _Locator, table: str, names: list[str]) -> None:
    seen: set[str] = set()
    for index, name in enumerate(names):
        if name in seen:
            line = where.item(table, index, ["name"])
            raise WatchConfigError(f"{line}: {table} {index + 1}: duplicate name {name!r}")
        seen.add(name)


class _Locator:
    """Finds the line of a top-level key, a `[[table]]` entry or a key inside one."""

    def __init__(self, text: str, origin: str) -> None:
        self.lines = text.splitlines()
        self.origin = origin

    def _at(self, index: int | None) -> str:
        return self.origin if index is None else f"{self.origin}:{index + 1}"

    def key(self, key: str) -> str:
        pattern = re.compile(
            rf'^\s*(\[\[?\s*"?{re.escape(key)}"?\s*[\].]|"?{re.escape(key)}"?\s*=)'
        )
        for number, line in enumerate(self.lines):
            if pattern.match(line):
                return self._at(number)
        return self.origin

    def item(self, table: str, index: int, path: Sequence[str]) -> str:
        header = re.compile(rf"^\s*\[\[\s*{re.escape(table)}\s*\]\]")
        any_entry = re.compile(r"^\s*\[\[")
        starts = [n for n, line in enumerate(self.lines) if header.match(line)]
        if index >= len(starts):
            return self.key(table)
        start = starts[index]
        end = next(
            (n for n in range(start + 1, len(self.lines)) if any_entry.match(self.lines[n])),
            len(self.lines),
        )
        for key in reversed(path):
            found = re.compile(rf'(^|[\s{{,.\[])"?{re.escape(key)}"?\s*(=|\])')
            for number in range(start + 1, end):
                if found.search(self.lines[number].split("#", 1)[0]):
                    return self._at(number)
        return self._at(start)
