"""`agentops watch`: the headless companion (records, incidents, pages, rules) and its --status.

Only typer and the standard library load here; asyncio, httpx, pydantic and sqlite load
inside the command (tests/cli/test_import_cost.py).

Exit codes: 0 stopped cleanly (SIGTERM / SIGINT) or `--status` of a running watcher;
1 `--status` when no watcher is running; 2 bad arguments or watch.toml (one line naming
file and line), or nothing to watch; 6 records or governance DB problem, including a
second watcher on the same records DB; 70 a bug.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .common import ExitCode, cli_errors, emit_json, fail, say
from .gov_common import DbOpt, JsonOpt, gov_errors, out, table

if TYPE_CHECKING:
    from ..watch.config import WatchConfig
    from ..watch.service import Source

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


def watch(
    records: RecordsOpt = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="watch.toml: sinks, rules, [incidents] (default: none)."),
    ] = None,
    endpoint: Annotated[
        list[str] | None,
        typer.Option("--endpoint", help="Agent endpoint URL (repeatable); default: the registry."),
    ] = None,
    token_env: Annotated[
        list[str] | None,
        typer.Option(
            "--token-env",
            help="Variable holding the token of the --endpoint at the same position (one for"
            " all when given once).",
        ),
    ] = None,
    db: DbOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Rules only report what they would do.")
    ] = False,
    keep_days: Annotated[
        float | None, typer.Option("--keep-days", min=0, help="Prune sessions older than this.")
    ] = None,
    max_mb: Annotated[
        float | None, typer.Option("--max-mb", min=0, help="Prune the oldest beyond this size.")
    ] = None,
    status: Annotated[
        bool, typer.Option("--status", help="Print the running watcher's health and exit.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Follow every agent: record finished sessions, open incidents, page, run the rules."""
    skip_httpx_cli()
    with gov_errors(), _watch_errors():
        path = _records_path(records, db)
        if status:
            raise typer.Exit(_status(path, json_out))
        settings = _config(config)
        sources = _sources(list(endpoint or []), list(token_env or []), db)
        governance = _governance(db, bool(endpoint))
        if settings.rules and governance is None and not dry_run:
            fail(
                "rules act on agents and must be audited: they need the governance DB"
                " (--db or AGENTOPS_DB), or run with --dry-run",
                ExitCode.DATABASE,
            )
        _run(path, settings, sources, governance, dry_run, keep_days, max_mb)


def skip_httpx_cli() -> None:
    """httpx imports its own command line (click, rich, pygments) whenever they are installed,
    as Typer's dependencies are: ~0.15 s of every watcher's start-up, more on a loaded box,
    for a `main` the watcher never runs. A None in sys.modules makes that import fail, which
    httpx expects (it then defines a stub `main`); a no-op once httpx is loaded."""
    import sys

    if "httpx" not in sys.modules:
        sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]


@contextmanager
def _watch_errors() -> Iterator[None]:
    from ..watch.errors import WatchConfigError

    with cli_errors((WatchConfigError, ExitCode.USAGE)):
        yield


def _records_path(records: Path | None, db: Path | None) -> Path:
    if records is not None:
        return records.expanduser()
    if db is not None:
        return db.expanduser().with_name("records.db")
    from ..records.paths import default_records_path

    return default_records_path()


def _config(path: Path | None) -> WatchConfig:
    from ..watch.config import WatchConfig, load_config

    settings = WatchConfig(origin="(no watch.toml)") if path is None else load_config(path)
    settings.build_sinks()  # every secret variable is read now: a missing one stops here
    return settings


def _sources(endpoints: list[str], token_envs: list[str], db: Path | None) -> list[Source]:
    from ..watch.service import Source

    if endpoints:
        if len(token_envs) > 1 and len(token_envs) != len(endpoints):
            fail("give --token-env once (for every --endpoint) or once per --endpoint")
        names: list[str | None] = list(token_envs)
        if len(names) <= 1:
            names = (names or [None]) * len(endpoints)
        pairs = list(zip(endpoints, names, strict=True))
        seen: set[str] = set()
        sources = []
        for url, var in pairs:
            checked = _url(url)
            if checked in seen:
                fail(f"--endpoint {url} given twice")
            seen.add(checked)
            sources.append(Source(checked, checked, _token(var, checked)))
        return sources
    from .gov_common import open_gdb

    with open_gdb(db) as gdb:
        from ..governance.api import registered_agents

        agents = registered_agents(gdb)
    if not agents:
        fail("nothing to watch: no agent in the registry and no --endpoint")
    return [Source(a.name, a.endpoint, _token(a.token_env, a.name)) for a in agents]


def _url(url: str) -> str:
    """The console's rule, without importing the console (it loads Textual: ~1 s)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        fail(f"--endpoint {url!r} is not an http(s) URL")
    return url.rstrip("/")


def _token(var: str | None, who: str) -> str | None:
    if var is None:
        return None
    value = os.environ.get(var, "").strip()
    if not value:
        fail(f"{who}: token variable {var} is not set")
    return value


def _governance(db: Path | None, endpoints_given: bool) -> Path | None:
    """The governance DB for incidents and audit; with --endpoint it may be absent."""
    from ..governance.paths import default_db_path

    path = (db or default_db_path()).expanduser()
    if path.exists():
        from .gov_common import open_gdb

        open_gdb(path).close()  # a foreign or newer file stops us here, in one line
        return path
    if db is not None or not endpoints_given:
        fail(f"no governance database at {path}", ExitCode.DATABASE)
    say(f"agentops: no governance database at {path}: incidents will not be opened")
    return None


def _run(
    records: Path,
    settings: WatchConfig,
    sources: list[Source],
    governance: Path | None,
    dry_run: bool,
    keep_days: float | None,
    max_mb: float | None,
) -> None:
    import asyncio

    from ..governance.paths import runbooks_dir
    from ..watch.service import WatchOptions, WatchService, configure_logging

    options = WatchOptions(
        records=records,
        config=settings,
        sources=tuple(sources),
        governance_db=governance,
        dry_run=dry_run,
        keep_days=keep_days,
        max_mb=max_mb,
        runbooks=runbooks_dir(),
    )
    configure_logging()

    async def main() -> None:
        await WatchService(options).run()

    asyncio.run(main())


def _status(records: Path, json_out: bool) -> int:
    from ..records.errors import WriterBusy
    from ..records.lock import WriterLock
    from ..watch.health import status_report

    lock = WriterLock(records)
    running = False
    if records.exists():
        try:
            lock.acquire()
        except WriterBusy:
            running = True
        else:
            lock.release()
    report = status_report(records, running)
    if json_out:
        emit_json(report)
    else:
        _print_status(report)
    return 0 if report["running"] else int(ExitCode.NOT_READY)


def _print_status(report: dict[str, object]) -> None:
    state = "running" if report["running"] else f"not running ({report['state']})"
    out(f"watcher: {state}, pid {report['pid']}, records {report['records']}")
    agents = report["agents"]
    assert isinstance(agents, dict)
    rows = [
        [
            name,
            a.get("state", "-"),
            a.get("last_event_at") or "-",
            a.get("lag_s", "-"),
            a.get("recorded_total", 0),
            a.get("pending", "-"),
            a.get("gaps_unfilled", 0),
            a.get("error") or "",
        ]
        for name, a in sorted(agents.items())
    ]
    if rows:
        out(
            table(
                rows,
                ["agent", "state", "last event", "lag s", "recorded", "pending", "gaps", "error"],
            )
        )
    sinks = report["sinks"]
    assert isinstance(sinks, dict)
    if sinks:
        out(
            table(
                [
                    [
                        n,
                        c["sent"],
                        c["failed"],
                        c["retried"],
                        c["dropped"],
                        c["queued"],
                        c["last_error"] or "",
                    ]
                    for n, c in sorted(sinks.items())
                ],
                ["sink", "sent", "failed", "retried", "dropped", "queued", "last error"],
            )
        )
    incidents = report["incidents"]
    if isinstance(incidents, dict) and incidents:
        out(
            f"incidents: opened {incidents.get('opened', 0)}, open {incidents.get('open', 0)},"
            f" failed {incidents.get('failed', 0)}"
        )
    if report.get("write_errors"):
        out(f"write errors: {report['write_errors']} (last: {report.get('last_write_error')})")


def register(app: typer.Typer) -> None:
    app.command("watch")(watch)
