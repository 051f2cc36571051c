"""What the governance commands share: the --db/--json/--as options, opening the DB,
and turning governance failures into one-line errors with the documented exit codes.

Only typer and the standard library load here; the governance package loads inside
each command.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .common import ExitCode, cli_errors, fail

if TYPE_CHECKING:
    from ..governance.db import GovernanceDB
    from ..governance.rubric import Rubric

DbOpt = Annotated[
    Path | None,
    typer.Option(
        "--db",
        envvar="AGENTOPS_DB",
        help="Governance DB file (default: AGENTOPS_DB, else the per-user data dir).",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
#: Who is acting, for every command that records an action: one definition, so no command
#: offers `--as` without `--operator` (the README promises both; a test walks the app).
AsOpt = Annotated[
    str | None,
    typer.Option(
        "--as",
        "--operator",
        help="Who is acting (default: AGENTOPS_OPERATOR, else the OS user).",
        show_default=False,
    ),
]

#: A listing narrowed to one agent takes it like every command about one agent does:
#: positional AGENT (`release list it-support`, as `owner list it-support`). `--agent`
#: stays an alias where it was accepted before, so scripts and the README keep working.
AgentArg = Annotated[
    str | None,
    typer.Argument(metavar="AGENT", help="Only this agent.", show_default=False),
]
AgentAlias = Annotated[
    str | None,
    typer.Option("--agent", help="Same as AGENT (kept for scripts).", show_default=False),
]


def one_agent(positional: str | None, alias: str | None) -> str | None:
    """The agent given as AGENT or as --agent; both, when they differ, is a usage error."""
    if positional is not None and alias is not None and positional != alias:
        fail(f"give the agent once: AGENT {positional!r} and --agent {alias!r} differ")
    return positional if positional is not None else alias


@contextmanager
def gov_errors() -> Iterator[None]:
    """Governance and SQLite failures as `agentops: error: ...` plus an exit code."""
    import sqlite3

    from ..governance import errors as e

    with cli_errors(
        (e.BadInput, ExitCode.USAGE),
        (e.NotFound, ExitCode.NOT_FOUND),
        (e.Conflict, ExitCode.CONFLICT),
        (e.Unreachable, ExitCode.UNREACHABLE),
        (e.DatabaseProblem, ExitCode.DATABASE),
        (e.KeyProblem, ExitCode.AUDIT_KEY),
        (e.NotReady, ExitCode.NOT_READY),
        (sqlite3.Error, ExitCode.DATABASE),
        (OSError, ExitCode.USAGE),  # e.g. an export directory that cannot be written
        (OverflowError, ExitCode.USAGE),  # a number too big for SQLite's 64-bit integers
    ):
        yield


def open_gdb(db: Path | None, create: bool = False) -> "GovernanceDB":
    from ..governance.db import open_db
    from ..governance.paths import default_db_path

    return open_db(db or default_db_path(), create=create)


def actor(explicit: str | None) -> str:
    from ..governance.identity import resolve_operator

    return resolve_operator(explicit)


def rubric(name: str = "deployment") -> "Rubric":
    from ..governance.paths import rubrics_dir
    from ..governance.rubric import find_rubric

    return find_rubric(rubrics_dir(), name)


def runbooks_path() -> Path:
    from ..governance.paths import runbooks_dir

    return runbooks_dir()


def table(rows: list[list[Any]], headers: list[str]) -> str:
    """A plain left-aligned text table; cells are printed literally (no markup), cleaned
    before the widths are measured so escapes do not shift the columns."""
    from ..protocol.text import clean

    cells = [["" if c is None else clean(str(c).replace("\n", " "), None) for c in r] for r in rows]
    widths = [len(h) for h in headers]
    for r in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, r, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def literal(text: str) -> str:
    """Control, bidi and format characters (ESC, U+202E ...) shown as escapes, never sent
    to the terminal: names, summaries and details can come from agents and are untrusted.
    Newlines and tabs stay: `out` prints whole tables."""
    # here, not at the top: the protocol package loads pydantic, --help must not
    from ..protocol.text import clean_block

    return clean_block(text)


def out(text: str) -> None:
    """A line of data on stdout, rendered literally."""
    typer.echo(literal(text))
