"""`agentops sessions list|show|export|import`: the recorded sessions in the records DB.

Only typer and the standard library load here; the records store, pydantic and sqlite load
inside each command (tests/cli/test_import_cost.py).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .common import ExitCode, cli_errors, command_group, emit_json, fail, say
from .gov_common import JsonOpt, gov_errors, out, table

if TYPE_CHECKING:
    from ..protocol.records import SessionRecord, SpanRecord
    from ..records.store import Filters, RecordsStore

sessions_app = command_group("Recorded sessions (the records DB): list, show, export, import.")

RecordsOpt = Annotated[
    Path | None,
    typer.Option(
        "--records",
        envvar="AGENTOPS_RECORDS",
        help="Records DB file (default: AGENTOPS_RECORDS, else records.db beside the"
        " governance DB).",
        show_default=False,
    ),
]
AgentOpt = Annotated[str | None, typer.Option("--agent", help="Only this agent.")]
VersionOpt = Annotated[str | None, typer.Option("--version", help="Only this agent version.")]
WorkflowOpt = Annotated[str | None, typer.Option("--workflow", help="Only this workflow.")]
OutcomeOpt = Annotated[
    str | None,
    typer.Option(
        "--outcome",
        help="Only this final outcome: resolved, partial, escalated, refused, unsafe,"
        " failed, unknown.",
    ),
]
FlagOpt = Annotated[str | None, typer.Option("--flag", help="Only sessions with this flag kind.")]
SinceOpt = Annotated[
    str | None,
    typer.Option("--since", help="Started at or after: ISO 8601, or 30m / 24h / 7d / 2w ago."),
]
UntilOpt = Annotated[
    str | None, typer.Option("--until", help="Started before: ISO 8601, or 30m / 24h / 7d ago.")
]
PrincipalOpt = Annotated[
    str | None, typer.Option("--principal", help="Only sessions of this principal.")
]

_RELATIVE = re.compile(r"^(\d{1,6})([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
#: Longest value printed in a timeline line; --json shows everything.
_SHOWN = 300


@contextmanager
def records_errors() -> Iterator[None]:
    """Records, governance and SQLite failures, and unreadable record files, as one line."""
    from ..protocol.records import RecordFormatError

    with gov_errors(), cli_errors((RecordFormatError, ExitCode.USAGE)):
        yield


def _open(records: Path | None, *, writer: bool = False) -> RecordsStore:
    from ..records.paths import default_records_path
    from ..records.store import open_store

    path = records or default_records_path()
    return open_store(path, writer=writer, create=writer)


def _when(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    from ..governance.clock import parse_ts, utcnow
    from ..governance.errors import BadInput

    match = _RELATIVE.match(text.strip())
    if match:
        return utcnow() - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        return parse_ts(text)
    except BadInput:
        fail(f"{option}: invalid time {text!r}: use ISO 8601 (2025-05-01T09:30:00Z) or 24h, 7d")


def _filters(
    agent: str | None,
    version: str | None,
    workflow: str | None,
    outcome: str | None,
    flag: str | None,
    since: str | None,
    until: str | None,
    principal: str | None,
    limit: int | None,
) -> Filters:
    from ..protocol.models import FLAG_KINDS
    from ..protocol.records import OUTCOMES
    from ..records.store import Filters

    if outcome is not None and outcome not in OUTCOMES:
        fail(f"--outcome: unknown outcome {outcome!r}; one of {', '.join(OUTCOMES)}")
    if flag is not None and flag not in FLAG_KINDS:
        fail(f"--flag: unknown flag kind {flag!r}; one of {', '.join(FLAG_KINDS)}")
    start, end = _when(since, "--since"), _when(until, "--until")
    if start is not None and end is not None and start >= end:
        fail("--since must be before --until")
    return Filters(
        agent=agent,
        version=version,
        workflow=workflow,
        outcome=outcome,
        flag=flag,
        principal=principal,
        since=start,
        until=end,
        limit=limit,
    )


@sessions_app.command("list")
def sessions_list(
    agent: AgentOpt = None,
    version: VersionOpt = None,
    workflow: WorkflowOpt = None,
    outcome: OutcomeOpt = None,
    flag: FlagOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    principal: PrincipalOpt = None,
    limit: Annotated[int, typer.Option(help="Newest N sessions.", min=1, max=10**9)] = 50,
    records: RecordsOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Recorded sessions, newest first."""
    with records_errors():
        filters = _filters(agent, version, workflow, outcome, flag, since, until, principal, limit)
        with _open(records) as store:
            found = list(store.query(filters))
        if json_:
            emit_json([r.model_dump(mode="json", exclude={"spans"}) for r in found])
            return
        rows = [
            [
                r.started_at.strftime("%Y-%m-%d %H:%M:%S"),
                r.agent,
                r.agent_version,
                r.session_id,
                r.workflow,
                r.principal,
                r.status,
                r.final_outcome,
                r.counters.tool_calls,
                f"{r.cost_usd:.4f}",
                ",".join(dict.fromkeys(f.kind for f in r.flags)),
            ]
            for r in found
        ]
        headers = ["STARTED", "AGENT", "VERSION", "SESSION", "WORKFLOW", "PRINCIPAL"]
        headers += ["STATUS", "OUTCOME", "TOOLS", "COST_USD", "FLAGS"]
        out(table(rows, headers))
        say(f"{len(found)} sessions" + (f" (the newest {limit})" if len(found) == limit else ""))


@sessions_app.command("show")
def sessions_show(
    session_id: Annotated[str, typer.Argument(help="Session id (`sessions list`).")],
    agent: Annotated[
        str | None, typer.Option("--agent", help="The agent, when the id is not unique.")
    ] = None,
    records: RecordsOpt = None,
    json_: JsonOpt = False,
) -> None:
    """One session and its timeline, with every audit field."""
    with records_errors():
        with _open(records) as store:
            record = store.get(session_id, agent)
        if json_:
            emit_json(record.model_dump(mode="json"))
            return
        for line in _describe(record):
            out(line)


def _describe(r: SessionRecord) -> Iterator[str]:
    ended = r.ended_at.isoformat() if r.ended_at else "-"
    yield f"session {r.session_id}  agent {r.agent} {r.agent_version}  tenant {r.tenant or '-'}"
    yield f"workflow {r.workflow}  principal {r.principal}  trace {r.trace_id or '-'}"
    yield f"started {r.started_at.isoformat()}  ended {ended}  source {r.source}"
    reason = f" ({r.outcome_reason})" if r.outcome_reason else ""
    yield f"status {r.status}  final outcome {r.final_outcome}{reason}"
    c = r.counters
    yield (
        f"loops {c.loops}  tool calls {c.tool_calls}  retries {c.retries}"
        f"  unauthorized attempts {c.unauthorized_attempts}"
        f"  tokens {r.tokens_in} in / {r.tokens_out} out  cost ${r.cost_usd:.6f}"
    )
    limits = {k: v for k, v in r.budget.model_dump().items() if v is not None}
    budget = ", ".join(f"{k}={v}" for k, v in limits.items()) or "none"
    yield f"budget in force {budget}  policy version {r.policy_version or '-'}"
    if r.killed is not None:
        yield f"killed by {r.killed.operator} at {r.killed.at.isoformat()}: {r.killed.reason}"
    for flag in r.flags:
        yield f"flag {flag.kind} ({flag.severity}) at {flag.at.isoformat()}: {flag.message}"
    if r.input is not None:
        yield f"input: {_clip(r.input)}"
    if r.output is not None:
        yield f"output: {_clip(r.output)}"
    yield f"timeline ({len(r.spans)} spans):"
    for span in r.spans:
        yield from _span_lines(span, r.started_at)


def _span_lines(s: SpanRecord, start: datetime) -> Iterator[str]:
    offset = (s.started_at - start).total_seconds()
    what = s.name
    if s.tool_name:
        what = f"{s.tool_name}@{s.tool_version}" if s.tool_version else s.tool_name
    latency = f"{s.latency_ms:.1f}ms" if s.latency_ms is not None else "-"
    parent = f" parent {s.parent_span_id}" if s.parent_span_id else ""
    yield (
        f"  +{offset:8.3f}s  {s.kind:<9} {what}  [{s.outcome}]  span {s.span_id}{parent}"
        f"  latency {latency}  tokens {s.token_in}/{s.token_out}"
        f"  cost ${s.estimated_cost_usd:.6f}" + (f"  model {s.model}" if s.model else "")
    )
    if s.parent_trace_id:
        yield f"      parent trace {s.parent_trace_id}"
    if s.policy_decision is not None:
        why = f": {s.policy_reason}" if s.policy_reason else ""
        yield f"      policy {s.policy_decision} (version {s.policy_version or '-'}){why}"
    if s.human_override is not None:
        h = s.human_override
        at = h.at.isoformat() if h.at else "unknown time"
        note = f": {h.reason}" if h.reason else ""
        yield f"      human override {h.decision} by {h.by or 'unknown'} at {at}{note}"
    if s.arguments is not None:
        yield f"      arguments {_clip(_json(s.arguments))}"
    if s.tool_output is not None:
        yield f"      output {_clip(_json(s.tool_output))}"
    if s.error:
        yield f"      error {_clip(s.error)}"


def _json(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _clip(text: str) -> str:
    from ..protocol.text import one_line

    return one_line(text, _SHOWN)


@sessions_app.command("export")
def sessions_export(
    format_: Annotated[str, typer.Option("--format", help="Output format: jsonl.")] = "jsonl",
    agent: AgentOpt = None,
    version: VersionOpt = None,
    workflow: WorkflowOpt = None,
    outcome: OutcomeOpt = None,
    flag: FlagOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    principal: PrincipalOpt = None,
    limit: Annotated[
        int | None, typer.Option(help="Only the newest N sessions.", min=1, max=10**9)
    ] = None,
    out_file: Annotated[
        Path | None, typer.Option("--out", "-o", help="File (default stdout).")
    ] = None,
    records: RecordsOpt = None,
) -> None:
    """Sessions in the agentops.record/1 format, one JSON object per line, oldest first."""
    with records_errors():
        if format_ != "jsonl":
            fail(f"--format: unknown format {format_!r}; the only one is jsonl")
        from ..protocol.records import write_jsonl

        filters = _filters(agent, version, workflow, outcome, flag, since, until, principal, limit)
        with _open(records) as store:
            chosen = store.query(filters, spans=True, newest_first=False)
            if out_file is None:
                count = write_jsonl(chosen, sys.stdout)
            else:
                part = out_file.with_name(out_file.name + ".part")
                try:
                    with part.open("w", encoding="utf-8") as fh:
                        count = write_jsonl(chosen, fh)
                    part.replace(out_file)
                finally:
                    part.unlink(missing_ok=True)
        say(f"exported {count} sessions")


@sessions_app.command("import")
def sessions_import(
    file: Annotated[Path, typer.Argument(help="agentops.record/1 JSON Lines file.")],
    records: RecordsOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Load exported sessions; importing the same file again changes nothing."""
    with records_errors():
        from ..protocol.records import load_jsonl

        # Read the whole file once before writing: a bad line imports nothing.
        total = sum(1 for _ in load_jsonl(file))
        with _open(records, writer=True) as store:
            result = store.write(load_jsonl(file))
        if json_:
            emit_json(
                {
                    "read": total,
                    "inserted": result.inserted,
                    "replaced": result.replaced,
                    "merged": result.merged,
                    "kept": result.kept,
                }
            )
        say(
            f"imported {total} records from {file}: {result.inserted} new,"
            f" {result.replaced} replaced, {result.merged} merged into an earlier run of their"
            f" conversation, {result.kept} already stored as complete or more"
        )


def register(app: typer.Typer) -> None:
    app.add_typer(sessions_app, name="sessions")
