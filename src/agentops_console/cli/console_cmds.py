"""`agentops console` (the live TUI) and `agentops status` (the same facts, printed once).

Module level imports typer and the stdlib only; textual, httpx and the console package
load inside the command body so `agentops --help` stays fast.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from .common import ExitCode, cli_errors, emit_json, fail, say

_ENDPOINT = typer.Option(
    None, "--endpoint", help="Agent endpoint URL (repeatable); default: the registry's agents."
)
_TOKEN_ENV = typer.Option(
    None, "--token-env", help="Environment variable holding the endpoints' bearer token."
)
_DB = typer.Option(None, "--db", help="Governance database (default: AGENTOPS_DB or user data).")
_KEYMAP = typer.Option(
    None, "--keymap", help="TOML file with [keys] binding-id = key (default: user config)."
)

_RECORDS = typer.Option(
    None,
    "--records",
    help="Records DB for sessions the agents no longer hold, read-only"
    " (default: AGENTOPS_RECORDS, else records.db beside the governance DB).",
)


def console(
    endpoint: list[str] | None = _ENDPOINT,
    token_env: str | None = _TOKEN_ENV,
    db: Path | None = _DB,
    operator: str | None = typer.Option(
        None,
        "--as",
        "--operator",
        help="Who is acting (default: AGENTOPS_OPERATOR, then OS user).",
    ),
    readonly: bool = typer.Option(
        False,
        "--readonly",
        help="Watch only: no action keys, and the read-only token where the agent has one.",
    ),
    read_token_env: str | None = typer.Option(
        None,
        "--read-token-env",
        help="With --endpoint and --readonly: variable holding the endpoints' read-only token.",
    ),
    keymap: Path | None = _KEYMAP,
    records: Path | None = _RECORDS,
) -> None:
    """The live operations console: fleet, sessions, alerts, approvals; kill, disable, budget."""
    from ..governance.errors import BadInput

    with cli_errors((BadInput, ExitCode.USAGE)):
        from ..console.keymap import KeymapError, load_keymap
        from ..console.launch import LaunchError, resolve
        from ..governance.identity import resolve_operator

        try:
            launch = resolve(
                list(endpoint or []),
                token_env,
                db,
                read_token_env=read_token_env,
                readonly=readonly,
            )
            keys = load_keymap(keymap)
        except LaunchError as exc:
            fail(str(exc), ExitCode(exc.code))
        except KeymapError as exc:
            fail(str(exc), ExitCode.USAGE)
        if not sys.stdout.isatty():
            fail("the console needs a terminal; use `agentops status` in scripts")
        from ..console.app import AgentOpsConsole
        from ..console.history import RecordsReader, records_path

        app = AgentOpsConsole(
            launch.sources,
            governance=None if readonly else launch.governance,
            operator=resolve_operator(operator),
            readonly=readonly,
            keymap=keys,
            readonly_reason=launch.readonly_reason,
            records=RecordsReader(records_path(records, db)),
        )
        app.run()


def status(
    json_out: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
    endpoint: list[str] | None = _ENDPOINT,
    token_env: str | None = _TOKEN_ENV,
    db: Path | None = _DB,
    timeout: float = typer.Option(
        10.0, "--timeout", min=0.1, help="Seconds each agent has to answer in full."
    ),
) -> None:
    """Print the fleet and its running sessions once; exit 5 only when no agent answers."""
    with cli_errors():
        import asyncio

        from ..console.launch import LaunchError, resolve

        try:
            launch = resolve(list(endpoint or []), token_env, db)
        except LaunchError as exc:
            fail(str(exc), ExitCode(exc.code))
        from ..console.status_report import gather, render

        reports = asyncio.run(gather(launch.sources, timeout_s=timeout))
        if json_out:
            emit_json({"agents": [r.as_dict() for r in reports]})
        else:
            from rich.console import Console

            wide = None if sys.stdout.isatty() else 240  # piped: do not cut columns at 80
            render(reports, Console(highlight=False, width=wide))
        for r in reports:
            if r.error is not None:
                say(f"agentops: {r.source.key}: {r.error}")
        if all(r.error is not None for r in reports):
            raise typer.Exit(int(ExitCode.UNREACHABLE))


def register(app: typer.Typer) -> None:
    app.command("console")(console)
    app.command("status")(status)
