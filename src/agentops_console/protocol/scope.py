"""Budget scopes as PUT /v1/budgets and `budgets_changed` carry them: `agent`,
`workflow:<name>` or `session:<id>`.

One parser and one writer for the runtime, the console, the CLI and the watcher, so a scope
means the same everywhere and a bad one is refused with the same sentence. Standard
library only: the runtime imports it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, get_args

ScopeKind = Literal["agent", "workflow", "session"]

#: The one sentence every caller shows for a bad scope (with the value it was given).
SCOPE_RULE = "scope must be 'agent', 'workflow:<name>' or 'session:<id>'"

_KINDS: frozenset[str] = frozenset(get_args(ScopeKind))
_NAME_RE = re.compile(r"[^\s/]{1,200}")  # one path segment of a URL, one word in a log line


class ScopeError(ValueError):
    """A scope that is none of the three forms (pydantic reports a ValueError as a 400)."""

    def __init__(self, value: object) -> None:
        shown = value[:60] + "…" if isinstance(value, str) and len(value) > 60 else value
        super().__init__(f"{SCOPE_RULE}, not {shown!r}")


def _valid(kind: str, name: str) -> bool:
    if kind == "agent":
        return name == ""
    return kind in _KINDS and _NAME_RE.fullmatch(name) is not None


@dataclass(frozen=True, slots=True)
class Scope:
    """`name` is the workflow or the session id; empty for the agent scope."""

    kind: ScopeKind
    name: str = ""

    def __post_init__(self) -> None:
        if not _valid(self.kind, self.name):
            raise ScopeError(f"{self.kind}:{self.name}" if self.name else self.kind)

    def __str__(self) -> str:
        """The wire form."""
        return f"{self.kind}:{self.name}" if self.name else str(self.kind)

    @property
    def workflow(self) -> str | None:
        return self.name if self.kind == "workflow" else None

    @property
    def session_id(self) -> str | None:
        return self.name if self.kind == "session" else None


AGENT = Scope("agent")


def parse_scope(text: str) -> Scope:
    """`agent`, `workflow:<name>` or `session:<id>`; ScopeError (a ValueError) otherwise."""
    if text == "agent":
        return AGENT
    kind, _, name = text.partition(":")
    if kind not in ("workflow", "session") or not _valid(kind, name):
        raise ScopeError(text)
    return Scope("workflow" if kind == "workflow" else "session", name)
