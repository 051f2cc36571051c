"""Incident runbooks: Markdown files with TOML front matter between `+++` lines.

Front matter: name, title, triggers (flag kinds), severity, owner_role. The body is
the procedure; its numbered list items are the steps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import BadInput, NotFound
from .names import ROLES
from .tomlfile import parse_toml, read_text

SEVERITIES = ("critical", "high", "medium", "low")
_STEP = re.compile(r"^\s{0,3}\d+[.)]\s+(.*\S)\s*$")
_LINE = re.compile(r"^(.*):(\d+): (.*)$", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Runbook:
    name: str
    title: str
    triggers: tuple[str, ...]
    severity: str
    owner_role: str
    body: str
    steps: tuple[str, ...]
    path: Path

    def as_dict(self, full: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "title": self.title,
            "triggers": list(self.triggers),
            "severity": self.severity,
            "owner_role": self.owner_role,
            "steps": list(self.steps),
            "path": str(self.path),
        }
        if full:
            data["body"] = self.body
        return data


def parse_runbook(text: str, path: Path) -> Runbook:
    lines = text.splitlines()
    if not lines or lines[0].strip() != "+++":
        raise BadInput(f"{path}:1: a runbook starts with TOML front matter between +++ lines")
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "+++")
    except StopIteration:
        raise BadInput(f"{path}: front matter is not closed with a +++ line") from None
    front = "\n".join(lines[1:end])
    try:
        meta = parse_toml(front, str(path))
    except BadInput as exc:
        found = _LINE.match(str(exc))
        if found:  # front matter starts on line 2 of the file
            raise BadInput(
                f"{found.group(1)}:{int(found.group(2)) + 1}: {found.group(3)}"
            ) from None
        raise
    problems = []
    for key in ("name", "title", "severity", "owner_role"):
        if not isinstance(meta.get(key), str) or not meta[key].strip():
            problems.append(f"`{key}` (a string) is required")
    triggers = meta.get("triggers", [])
    if not isinstance(triggers, list) or not all(isinstance(t, str) for t in triggers):
        problems.append("`triggers` must be a list of flag kinds")
    if meta.get("severity") not in SEVERITIES:
        problems.append(f"`severity` must be one of {', '.join(SEVERITIES)}")
    if meta.get("owner_role") not in ROLES:
        problems.append(f"`owner_role` must be one of {', '.join(ROLES)}")
    if problems:
        raise BadInput(f"{path}: " + "; ".join(problems))
    body = "\n".join(lines[end + 1 :]).strip("\n") + "\n"
    steps = tuple(m.group(1) for m in map(_STEP.match, body.splitlines()) if m)
    return Runbook(
        name=meta["name"],
        title=meta["title"],
        triggers=tuple(triggers),
        severity=meta["severity"],
        owner_role=meta["owner_role"],
        body=body,
        steps=steps,
        path=path,
    )


def load_runbook(path: Path) -> Runbook:
    return parse_runbook(read_text(path), path)


def list_runbooks(directory: Path) -> list[Runbook]:
    if not directory.is_dir():
        raise NotFound(f"no runbooks directory at {directory}")
    books = [load_runbook(p) for p in sorted(directory.glob("*.md"))]
    seen: dict[str, Path] = {}
    for book in books:
        if book.name in seen:
            raise BadInput(
                f"runbook name {book.name!r} is used by {seen[book.name]} and {book.path}"
            )
        seen[book.name] = book.path
    return books


def find_runbook(directory: Path, name: str) -> Runbook:
    for book in list_runbooks(directory):
        if book.name == name:
            return book
    raise NotFound(f"unknown runbook {name!r} (in {directory})")


def runbooks_for(directory: Path, trigger: str) -> list[Runbook]:
    """Runbooks whose triggers include this flag kind, best match first: the ones that
    list it earliest (their primary trigger), then the more specific, then most severe."""
    order = {s: i for i, s in enumerate(SEVERITIES)}
    found = [b for b in list_runbooks(directory) if trigger in b.triggers]
    return sorted(
        found,
        key=lambda b: (b.triggers.index(trigger), len(b.triggers), order[b.severity], b.name),
    )
