"""`agentops audit ...`, `export` and `import`: the hash-chained log and governance as code."""

import sys
from pathlib import Path
from typing import Annotated

import typer

from .common import ExitCode, command_group, emit_json, say
from .gov_common import (
    AgentAlias,
    AgentArg,
    AsOpt,
    DbOpt,
    JsonOpt,
    actor,
    gov_errors,
    one_agent,
    open_gdb,
    out,
    rubric,
    runbooks_path,
    table,
)

audit_app = command_group("The hash-chained audit log of every governance action.")


@audit_app.command("list")
def audit_list(
    agent: AgentArg = None,
    agent_alias: AgentAlias = None,
    action: Annotated[
        str | None,
        typer.Option(help="Only this action or prefix (e.g. workflow); old spellings too."),
    ] = None,
    source: Annotated[
        str | None, typer.Option(help="Only rows from cli, console, watch, import or demo.")
    ] = None,
    limit: Annotated[int, typer.Option(help="Newest N rows.", min=1, max=10**9)] = 50,
    db: DbOpt = None,
    json_: JsonOpt = False,
) -> None:
    """The newest audit rows, oldest first, in the one vocabulary (old rows' names mapped;
    `--json` keeps the stored text as recorded_action/recorded_target)."""
    with gov_errors():
        from ..governance import vocabulary
        from ..governance.audit import iter_rows
        from ..governance.errors import BadInput

        agent = one_agent(agent, agent_alias)
        if source is not None and source not in vocabulary.SOURCES:
            raise BadInput(f"--source must be one of {', '.join(vocabulary.SOURCES)}")
        with open_gdb(db) as gdb:
            found = iter_rows(
                gdb.conn, agent=agent, action=action, source=source, newest_first=True, limit=limit
            )
            rows = [r.view() for r in found]
        rows.reverse()
        if json_:
            emit_json(rows)
            return
        import json

        cells = [
            [
                r["seq"],
                r["at"][:19],
                r["actor"],
                r["source"],
                r["action"],
                r["target"],
                r["outcome"][:60],
                json.dumps(r["details"], ensure_ascii=False)[:60],
            ]
            for r in rows
        ]
        headers = ["SEQ", "AT", "ACTOR", "SOURCE", "ACTION", "TARGET", "OUTCOME", "DETAILS"]
        out(table(cells, headers))


@audit_app.command("verify")
def audit_verify(
    checkpoint: Annotated[
        Path | None,
        typer.Option(help="A file from `audit checkpoint`: also find rows removed since."),
    ] = None,
    db: DbOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Check the keyed hash chain (and a checkpoint): exit 0 intact, 1 tampered (naming
    the first bad row), 7 the audit key is missing so keyed rows cannot be checked."""
    with gov_errors():
        from ..governance import checkpoint as cps
        from ..governance.audit import verify

        expected = None
        if checkpoint is not None:
            expected = cps.parse(checkpoint.read_text(encoding="utf-8"), str(checkpoint))
        with open_gdb(db) as gdb:
            result = verify(gdb.conn, gdb.key_file)
            if expected is not None:
                result = cps.compare(gdb.conn, result, expected, gdb.key_file)
        if json_:
            emit_json(result.as_dict())
        elif result.ok:
            note = f" ({result.note})" if result.note else ""
            out(f"audit log intact: {result.rows} rows{note}")
        elif result.status == "no-key":
            out(f"audit log not verified: {result.reason}")
        else:
            where = f" at row {result.bad_seq}" if result.bad_seq is not None else ""
            out(f"audit log tampered{where}: {result.reason}")
    if result.status == "no-key":
        raise typer.Exit(int(ExitCode.AUDIT_KEY))
    if not result.ok:
        raise typer.Exit(int(ExitCode.NOT_READY))


@audit_app.command("checkpoint")
def audit_checkpoint(
    out_: Annotated[
        Path | None, typer.Option("--out", help="File to write (default stdout).")
    ] = None,
    db: DbOpt = None,
) -> None:
    """The signed head of a log that verifies (row count, last row, its hash, time, HMAC):
    commit it to git or hand it on; `audit verify --checkpoint FILE` holds the log to it."""
    with gov_errors():
        import json

        from ..governance.checkpoint import take

        with open_gdb(db) as gdb:
            cp = take(gdb.conn, gdb.key_file)
        text = json.dumps(cp.as_dict(), indent=2) + "\n"
        if out_ is None:
            sys.stdout.write(text)
        else:
            tmp = out_.with_name(out_.name + ".part")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(out_)
        say(f"checkpoint of {cp.rows} audit rows (last hash {cp.last_hash[:12]}...)")


@audit_app.command("export")
def audit_export(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File (default stdout).")
    ] = None,
    agent: AgentArg = None,
    agent_alias: AgentAlias = None,
    db: DbOpt = None,
) -> None:
    """The log as JSON Lines, in chain order."""
    with gov_errors():
        from ..governance.audit import export_jsonl

        agent = one_agent(agent, agent_alias)
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
