"""`agentops audit ...`, `export` and `import`: the hash-chained log and governance as code."""

import sys
from pathlib import Path
from typing import Annotated

import typer

from .common import ExitCode, command_group, emit_json, say
from .gov_common import (
    AsOpt,
    DbOpt,
    JsonOpt,
    actor,
    gov_errors,
    open_gdb,
    out,
    rubric,
    runbooks_path,
    table,
)

audit_app = command_group("The hash-chained audit log of every governance action.")


@audit_app.command("list")
def audit_list(
    agent: Annotated[str | None, typer.Option(help="Only rows about this agent.")] = None,
    action: Annotated[
        str | None, typer.Option(help="Only this action (or prefix, e.g. release).")
    ] = None,
    limit: Annotated[int, typer.Option(help="Newest N rows.", min=1, max=10**9)] = 50,
    db: DbOpt = None,
    json_: JsonOpt = False,
) -> None:
    """The newest audit rows, oldest first."""
    with gov_errors():
        from ..governance.audit import iter_rows

        with open_gdb(db) as gdb:
            rows = list(
                iter_rows(gdb.conn, agent=agent, action=action, newest_first=True, limit=limit)
            )
        rows.reverse()
        if json_:
            emit_json([r.as_dict() for r in rows])
            return
        import json

        cells = [
            [
                r.seq,
                r.at[:19],
                r.actor,
                r.action,
                r.target,
                json.dumps(r.details, ensure_ascii=False)[:80],
            ]
            for r in rows
        ]
        out(table(cells, ["SEQ", "AT", "ACTOR", "ACTION", "TARGET", "DETAILS"]))


@audit_app.command("verify")
def audit_verify(db: DbOpt = None, json_: JsonOpt = False) -> None:
    """Check the hash chain; exit 1 naming the first bad row."""
    with gov_errors():
        from ..governance.audit import verify

        with open_gdb(db) as gdb:
            result = verify(gdb.conn)
        if json_:
            emit_json(
                {
                    "ok": result.ok,
                    "rows": result.rows,
                    "bad_row": result.bad_seq,
                    "reason": result.reason,
                }
            )
        elif result.ok:
            out(f"audit log intact: {result.rows} rows")
        else:
            out(f"audit log broken at row {result.bad_seq}: {result.reason}")
    if not result.ok:
        raise typer.Exit(int(ExitCode.NOT_READY))


@audit_app.command("export")
def audit_export(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File (default stdout).")
    ] = None,
    agent: Annotated[str | None, typer.Option(help="Only rows about this agent.")] = None,
    db: DbOpt = None,
) -> None:
    """The log as JSON Lines, in chain order."""
    with gov_errors():
        from ..governance.audit import export_jsonl

        with open_gdb(db) as gdb:
            if output is None:
                count = export_jsonl(gdb.conn, sys.stdout, agent=agent)
            else:
                tmp = output.with_name(output.name + ".part")
                with tmp.open("w", encoding="utf-8") as fh:
                    count = export_jsonl(gdb.conn, fh, agent=agent)
                tmp.replace(output)
        say(f"exported {count} audit rows")


def export_cmd(
    directory: Annotated[Path, typer.Argument(help="Directory to write TOML files into.")],
    db: DbOpt = None,
) -> None:
    """Write registry, owners, releases and sign-offs as TOML files for review in git."""
    with gov_errors():
        from ..governance.exchange import export_dir

        with open_gdb(db) as gdb:
            written = export_dir(gdb, directory)
        say(f"wrote {len(written)} files to {directory}")


def import_cmd(
    directory: Annotated[Path, typer.Argument(help="Directory written by `agentops export`.")],
    db: DbOpt = None,
    as_: AsOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Load exported TOML back; running it twice changes nothing the second time."""
    with gov_errors():
        from ..governance.exchange import import_dir

        with open_gdb(db) as gdb:
            result = import_dir(
                gdb, directory, actor=actor(as_), rubric_for=rubric, runbooks=runbooks_path()
            )
        if json_:
            emit_json({"changes": result.changes, "held_back": result.held_back})
        else:
            for change in result.changes:
                out(change)
        say(
            f"imported {len(result.changes)} changes from {directory}"
            if result.changes
            else "nothing to import: up to date"
        )
        if result.held_back:
            say(
                f"warning: {', '.join(result.held_back)} did not keep the standing"
                " their files claim (see above)"
            )


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")
    app.command("export")(export_cmd)
    app.command("import")(import_cmd)
