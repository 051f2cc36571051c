"""`agentops runbook ...`, `incident ...` and `report`: what to do, what happened, how fast."""

from typing import Annotated

import typer

from .common import command_group, emit_json, fail, say
from .gov_common import (
    AgentAlias,
    AgentArg,
    AsOpt,
    DbOpt,
    JsonOpt,
    actor,
    gov_errors,
    literal,
    one_agent,
    open_gdb,
    out,
    rubric,
    runbooks_path,
    table,
)

runbook_app = command_group("Incident runbooks (runbooks/*.md).")
incident_app = command_group(
    "Incidents: open, ack, note, resolve; list them; show one with its timeline."
)

AtOpt = Annotated[str | None, typer.Option("--at", help="When (ISO 8601, default now).")]
#: Taken as text and read by `incident_number`, so a typo gets our one line rather than
#: Click's (or pydantic's) wording and the Python parameter's name.
IncidentId = Annotated[
    str, typer.Argument(metavar="ID", help="Incident number (`incident list`).", show_default=False)
]
#: SQLite integers are 64-bit: a bigger number is a typo, refused before it reaches the DB
_MAX_ID = 2**63 - 1


def incident_number(text: str) -> int:
    """An incident id from the command line, or a one-line usage error."""
    shown = repr(literal(text if len(text) <= 40 else text[:40] + "..."))
    if not (text.isascii() and text.isdigit()):
        fail(f"incident id must be a number: {shown}")
    if not 1 <= int(text) <= _MAX_ID:
        fail(f"incident id must be a number from 1 to {_MAX_ID}: {shown}")
    return int(text)


@runbook_app.command("list")
def runbook_list(
    trigger: Annotated[str | None, typer.Option(help="Only runbooks for this flag kind.")] = None,
    json_: JsonOpt = False,
) -> None:
    """Runbooks and the flag kinds that trigger them."""
    with gov_errors():
        from ..governance.runbooks import list_runbooks, runbooks_for

        books = (
            runbooks_for(runbooks_path(), trigger) if trigger else list_runbooks(runbooks_path())
        )
        if json_:
            emit_json([b.as_dict() for b in books])
            return
        rows = [[b.name, b.severity, b.owner_role, ",".join(b.triggers), b.title] for b in books]
        out(table(rows, ["RUNBOOK", "SEVERITY", "OWNER", "TRIGGERS", "TITLE"]))


@runbook_app.command("show")
def runbook_show(name: str, json_: JsonOpt = False) -> None:
    """One runbook in full."""
    with gov_errors():
        from ..governance.runbooks import find_runbook

        book = find_runbook(runbooks_path(), name)
        if json_:
            emit_json(book.as_dict(full=True))
            return
        out(f"{book.title}  [{book.name}]  severity {book.severity}, owner {book.owner_role}")
        out(f"triggers: {', '.join(book.triggers)}\n")
        out(book.body.rstrip())


@incident_app.command("open")
def incident_open(
    agent: str,
    summary: Annotated[str, typer.Option(help="What is happening.")],
    runbook: Annotated[str | None, typer.Option(help="Runbook to follow.")] = None,
    severity: Annotated[str | None, typer.Option(help="critical, high, medium, low.")] = None,
    started_at: Annotated[str | None, typer.Option(help="When it began (ISO 8601).")] = None,
    detected_at: Annotated[
        str | None, typer.Option(help="When it was noticed (default now).")
    ] = None,
    db: DbOpt = None,
    as_: AsOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Open an incident; prints its id."""
    with gov_errors():
        from ..governance.incidents import open_incident
        from ..governance.runbooks import find_runbook

        book = find_runbook(runbooks_path(), runbook) if runbook else None
        with open_gdb(db) as gdb:
            incident = open_incident(
                gdb,
                actor=actor(as_),
                agent=agent,
                summary=summary,
                severity=severity or (book.severity if book else "medium"),
                runbook=book.name if book else None,
                started_at=started_at,
                detected_at=detected_at,
            )
        if json_:
            emit_json(incident.as_dict())
        else:
            out(str(incident.id))
        say(f"opened incident {incident.id} on {agent}")


@incident_app.command("ack")
def incident_ack(
    incident_id: IncidentId, note: str = "", at: AtOpt = None, db: DbOpt = None, as_: AsOpt = None
) -> None:
    """Acknowledge: someone is on it."""
    with gov_errors():
        from ..governance.incidents import acknowledge

        number = incident_number(incident_id)
        with open_gdb(db) as gdb:
            acknowledge(gdb, actor=actor(as_), incident_id=number, note=note, at=at)
        say(f"incident {number} acknowledged")


@incident_app.command("note")
def incident_note(incident_id: IncidentId, text: str, db: DbOpt = None, as_: AsOpt = None) -> None:
    """Add a note to the timeline."""
    with gov_errors():
        from ..governance.incidents import add_note

        number = incident_number(incident_id)
        with open_gdb(db) as gdb:
            add_note(gdb, actor=actor(as_), incident_id=number, text=text)
        say(f"noted on incident {number}")


@incident_app.command("resolve")
def incident_resolve(
    incident_id: IncidentId, note: str = "", at: AtOpt = None, db: DbOpt = None, as_: AsOpt = None
) -> None:
    """Resolve the incident."""
    with gov_errors():
        from ..governance.incidents import resolve

        number = incident_number(incident_id)
        with open_gdb(db) as gdb:
            resolve(gdb, actor=actor(as_), incident_id=number, note=note, at=at)
        say(f"incident {number} resolved")


@incident_app.command("list")
def incident_list(
    agent: AgentArg = None,
    agent_alias: AgentAlias = None,
    status: Annotated[str | None, typer.Option(help="open, acknowledged or resolved.")] = None,
    db: DbOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Incidents, oldest first."""
    with gov_errors():
        from ..governance.incidents import list_incidents

        agent = one_agent(agent, agent_alias)
        with open_gdb(db) as gdb:
            found = list_incidents(gdb, agent=agent, status=status)
        if json_:
            emit_json([i.as_dict() for i in found])
            return
        rows = [
            [i.id, i.agent, i.status, i.severity, i.runbook or "-", i.detected_at[:19], i.summary]
            for i in found
        ]
        out(table(rows, ["ID", "AGENT", "STATUS", "SEVERITY", "RUNBOOK", "DETECTED", "SUMMARY"]))


@incident_app.command("show")
def incident_show(
    incident_id: IncidentId,
    db: DbOpt = None,
    json_: JsonOpt = False,
    evidence: Annotated[
        bool,
        typer.Option(
            "--evidence", help="Print only the stored evidence: the session's record (JSON)."
        ),
    ] = False,
) -> None:
    """An incident, its timeline and its evidence (the triggering session's record)."""
    with gov_errors():
        from ..governance.errors import NotFound
        from ..governance.incidents import get_evidence, get_incident, timeline

        number = incident_number(incident_id)
        with open_gdb(db) as gdb:
            incident = get_incident(gdb, number)
            entries = timeline(gdb, number)
            stored = get_evidence(gdb, number)
        if evidence:
            if stored is None:
                raise NotFound(f"incident {number} has no stored evidence")
            emit_json(stored.record())
            return
        if json_:
            kept = None if stored is None else {**stored.summary(), "record": stored.record()}
            emit_json(
                {
                    **incident.as_dict(),
                    "timeline": [e.as_dict() for e in entries],
                    "evidence": kept,
                }
            )
            return
        out(f"incident {incident.id} on {incident.agent}: {incident.summary}")
        out(
            f"status {incident.status}, severity {incident.severity}, "
            f"runbook {incident.runbook or '-'}"
        )
        out(f"started {incident.started_at}  detected {incident.detected_at}")
        for e in entries:
            out(f"  {e.at[:19]}  {e.kind:<12} {e.actor:<12} {e.text}")
        if stored is None:
            out("evidence: none stored")
            return
        record = stored.record()
        where = "the agent" if stored.source == "agent" else "the records DB"
        out(
            f"evidence: session {literal(stored.session_id)} ({record.get('status', '?')},"
            f" {len(record.get('spans') or [])} spans, cost ${record.get('cost_usd', 0):.4f}),"
            f" from {where} {literal(stored.origin)} at {stored.captured_at[:19]},"
            f" {stored.stored_bytes} bytes"
        )
        if stored.note:
            out(f"  {stored.note}")
        out(f"  the record: agentops incident show {incident.id} --evidence")


def report(
    rubric_name: Annotated[
        str, typer.Option("--rubric", help="Rubric for sign-off coverage.")
    ] = "deployment",
    db: DbOpt = None,
    json_: JsonOpt = False,
) -> None:
    """MTTD, MTTA, MTTR per agent and overall; sign-off coverage of live releases."""
    with gov_errors():
        from ..governance.report import build_report

        spec = rubric(rubric_name)
        with open_gdb(db) as gdb:
            data = build_report(gdb, spec)
        if json_:
            emit_json(data)
            return

        def m(v: float | None) -> str:
            return "-" if v is None else f"{v:.1f}"

        rows = [
            [name, t["incidents"], t["open"], m(t["mttd_min"]), m(t["mtta_min"]), m(t["mttr_min"])]
            for name, t in [*data["agents"].items(), ("(all)", data["overall"])]
        ]
        out(table(rows, ["AGENT", "INCIDENTS", "OPEN", "MTTD min", "MTTA min", "MTTR min"]))
        out("")
        cov = [
            [
                c["agent"],
                c["version"],
                f"{c['roles_signed']}/{c['roles_required']}",
                ", ".join(c["missing"]) or "-",
            ]
            for c in data["live_releases"]
        ]
        out(table(cov, ["LIVE AGENT", "VERSION", "SIGNED", "MISSING"]))
        total = data["signoff_coverage"]
        out(f"sign-off coverage of live releases: {'-' if total is None else f'{total:.0%}'}")


def register(app: typer.Typer) -> None:
    app.add_typer(runbook_app, name="runbook")
    app.add_typer(incident_app, name="incident")
    app.command("report")(report)
