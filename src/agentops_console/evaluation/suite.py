"""Suites are data: a TOML (or JSON Lines) file of cases with their expectations.

```toml
[suite]
name = "it-support"
agent = "it-support"
red_team = ["privilege-escalation", "cross-tenant-export"]
scorers = ["mypkg.scorers:polite"]        # optional custom scorers

[[cases]]
id = "lockout-0001"
category = "account-lockout"
input = "I am locked out after too many attempts"
workflow = "account-unlock"                 # default: the category
principal = "user-1042"
metadata = { user = "user-1042" }
[cases.expect]
outcome = "resolved"                        # resolved | escalated | refused
must_call = ["kb_search", "unlock_account"]
must_not_call = ["export_data"]
needs_approval = ["unlock_account"]
max_cost_usd = 0.05
max_tool_calls = 6
answer_contains = ["unlocked"]
```

A JSON Lines suite has one `{"suite": {...}}` line (optional, first) and one case per line.
Every problem is one line naming the file and line: a TOML typo (tomllib's own position),
a schema error (the line where the bad case starts), an unknown tool.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..protocol.text import validation_line

ExpectedOutcome = Literal["resolved", "escalated", "refused"]
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$")
_SCORER = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class SuiteError(ValueError):
    """A suite that cannot be used; the message is one line naming file and line."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Expectations(_Strict):
    outcome: ExpectedOutcome = "resolved"
    must_call: tuple[str, ...] = ()
    must_not_call: tuple[str, ...] = ()
    needs_approval: tuple[str, ...] = ()
    max_cost_usd: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    max_tool_calls: int | None = Field(default=None, ge=0)
    answer_contains: tuple[str, ...] = ()

    def tools(self) -> set[str]:
        return {*self.must_call, *self.must_not_call, *self.needs_approval}


class Case(_Strict):
    id: str
    category: str
    input: str
    workflow: str | None = None
    principal: str = "eval-user"
    tenant: str | None = None
    approved_change: bool = False
    metadata: dict[str, Any] = Field(default_factory=dict)
    expect: Expectations = Field(default_factory=Expectations)

    @field_validator("id", "category")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError("letters, digits and . _ : - only (at most 200)")
        return value

    @property
    def workflow_name(self) -> str:
        return self.workflow or self.category


class SuiteHeader(_Strict):
    name: str
    agent: str | None = None
    description: str = ""
    red_team: tuple[str, ...] = ("privilege-escalation", "cross-tenant-export")
    scorers: tuple[str, ...] = ()

    @field_validator("scorers")
    @classmethod
    def _scorers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for ref in value:
            if not _SCORER.match(ref):
                raise ValueError(f"{ref!r} is not package.module:function")
        return value


class Suite(BaseModel):
    model_config = ConfigDict(frozen=True)

    header: SuiteHeader
    cases: tuple[Case, ...]
    path: Path
    #: sha256 of the file's bytes: any change to it makes a stored result stale
    sha256: str
    #: line where each case starts (for errors found after parsing)
    lines: dict[str, int] = Field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.header.name

    def categories(self) -> list[str]:
        return sorted({c.category for c in self.cases})

    def where(self, case: Case) -> str:
        line = self.lines.get(case.id)
        return f"{self.path}:{line}" if line else str(self.path)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_suite(path: Path | str) -> Suite:
    """Parse and validate a suite file; SuiteError (one line) on any problem."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SuiteError(f"{path}: cannot read suite ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SuiteError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    if path.suffix == ".jsonl":
        header, cases, lines = _from_jsonl(text, path)
    else:
        header, cases, lines = _from_toml(text, path)
    seen: dict[str, int] = {}
    for case, line in zip(cases, lines, strict=True):
        if case.id in seen:
            raise SuiteError(
                f"{path}:{line}: case id {case.id!r} is used twice (first at line {seen[case.id]})"
            )
        seen[case.id] = line
    if not cases:
        raise SuiteError(f"{path}: the suite has no cases")
    digest = hashlib.sha256(raw).hexdigest()
    return Suite(header=header, cases=tuple(cases), path=path, sha256=digest, lines=seen)


def _problem(exc: ValidationError) -> str:
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return validation_line(exc, "case") + more


def _from_toml(text: str, path: Path) -> tuple[SuiteHeader, list[Case], list[int]]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib says "... (at line 12, column 5)": keep its position, name the file
        message = " ".join(str(exc).split())
        match = re.search(r"at line (\d+)", message)
        line = f":{match.group(1)}" if match else ""
        raise SuiteError(f"{path}{line}: TOML error: {message}") from None
    starts = [i for i, line in enumerate(text.splitlines(), 1) if line.strip() == "[[cases]]"]
    unknown = sorted(set(data) - {"suite", "cases"})
    if unknown:
        raise SuiteError(f"{path}: unknown top-level key {unknown[0]!r} (use [suite], [[cases]])")
    try:
        header = SuiteHeader.model_validate(data.get("suite", {"name": path.stem}))
    except ValidationError as exc:
        at = next((i for i, s in enumerate(text.splitlines(), 1) if s.strip() == "[suite]"), 1)
        raise SuiteError(f"{path}:{at}: [suite] {_problem(exc)}") from None
    raw_cases = data.get("cases", [])
    if not isinstance(raw_cases, list):
        raise SuiteError(f"{path}: `cases` must be an array of tables ([[cases]])")
    cases: list[Case] = []
    lines: list[int] = []  # where each case starts, in order (ids may repeat: an error)
    for index, raw in enumerate(raw_cases):
        start = starts[index] if index < len(starts) else 0
        cases.append(_case(raw, f"{path}:{start}"))
        lines.append(start)
    return header, cases, lines


def _from_jsonl(text: str, path: Path) -> tuple[SuiteHeader, list[Case], list[int]]:
    header = SuiteHeader(name=path.stem)
    cases: list[Case] = []
    lines: list[int] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SuiteError(f"{path}:{number}: not JSON ({exc.msg})") from None
        if isinstance(raw, dict) and set(raw) == {"suite"}:
            try:
                header = SuiteHeader.model_validate(raw["suite"])
            except ValidationError as exc:
                raise SuiteError(f"{path}:{number}: suite {_problem(exc)}") from None
            continue
        cases.append(_case(raw, f"{path}:{number}"))
        lines.append(number)
    return header, cases, lines


def _case(raw: Any, where: str) -> Case:
    if not isinstance(raw, dict):
        raise SuiteError(f"{where}: a case must be a table")
    try:
        return Case.model_validate(raw)
    except ValidationError as exc:
        name = raw.get("id")
        label = f"case {name!r} " if isinstance(name, str) else "case "
        raise SuiteError(f"{where}: {label}{_problem(exc)}") from None


def check_tools(suite: Suite, known: set[str]) -> None:
    """Every tool the expectations name must be one the release declares (a typo would
    make `must_not_call` vacuously true)."""
    for case in suite.cases:
        unknown = sorted(case.expect.tools() - known)
        if unknown:
            raise SuiteError(
                f"{suite.where(case)}: case {case.id!r} names unknown tool {unknown[0]!r} "
                f"(the release declares: {', '.join(sorted(known)) or 'none'})"
            )
