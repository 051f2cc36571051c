"""What every `agentops` command shares: exit codes, one-line errors, JSON output.

Data goes to stdout, diagnostics to stderr. A failure is one line,
`agentops: error: <what>`, and a documented exit code, never a traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import IntEnum
from typing import Any, NoReturn

import typer


class ExitCode(IntEnum):
    """Documented in the README's "Exit codes" section; keep the two in step."""

    OK = 0
    NOT_READY = 1  # a check said no: release check, audit verify, a failed action
    USAGE = 2  # bad arguments or bad input file (also Click's own usage errors)
    NOT_FOUND = 3  # unknown agent, version, role, incident, runbook
    CONFLICT = 4  # duplicate name, self sign-off, state that forbids the change
    UNREACHABLE = 5  # an agent endpoint did not answer or refused the call
    DATABASE = 6  # the governance DB is missing, locked, read-only, or not a governance DB
    AUDIT_KEY = 7  # the audit key is missing, unreadable, or not the one the log is keyed with
    INTERNAL = 70  # a bug: an unexpected error (AGENTOPS_DEBUG=1 shows the traceback)
    INTERRUPTED = 130


class CLIError(Exception):
    """An expected failure: shown as one line on stderr, exits with `code`."""

    def __init__(self, message: str, code: ExitCode = ExitCode.USAGE) -> None:
        super().__init__(message)
        self.code = code


def fail(message: str, code: ExitCode = ExitCode.USAGE) -> NoReturn:
    raise CLIError(message, code)


def say(message: str) -> None:
    """A diagnostic for the person at the terminal; never part of the data on stdout."""
    typer.echo(message, err=True)


def _one_line(message: str) -> str:
    """An error for stderr: it often quotes an agent or an endpoint, so it is cleaned."""
    # here, not at the top: the protocol package loads pydantic, --help must not
    from ..protocol.text import one_line

    return one_line(message, None, "unknown error")


@contextmanager
def cli_errors(*mapping: tuple[type[BaseException], ExitCode]) -> Iterator[None]:
    """Turn expected exceptions into `agentops: error: ...` and an exit code.

    `mapping` adds (exception type, exit code) pairs for a context's own errors,
    checked in order before the built-in ones.
    """
    try:
        yield
    except BrokenPipeError:
        raise  # not the user's mistake: Click (or the entry point) exits 1 quietly
    except CLIError as exc:
        typer.echo(f"agentops: error: {_one_line(str(exc))}", err=True)
        raise typer.Exit(int(exc.code)) from None
    except tuple(t for t, _ in mapping) as exc:
        code = next(c for t, c in mapping if isinstance(exc, t))
        typer.echo(f"agentops: error: {_one_line(str(exc))}", err=True)
        raise typer.Exit(int(code)) from None


def command_group(help: str) -> typer.Typer:
    """A sub-command group (`agentops release`, ...): alone it prints its help."""
    return typer.Typer(no_args_is_help=True, help=help)


def emit_json(data: Any) -> None:
    """Machine output: one JSON document on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, default=str, sort_keys=False) + "\n")


def is_interactive() -> bool:
    """Prompts only when a person is there to answer them."""
    return sys.stdin.isatty() and sys.stdout.isatty()


def confirm_or_yes(question: str, yes: bool) -> None:
    """`--yes` for scripts; a prompt on a TTY; otherwise refuse rather than guess."""
    if yes:
        return
    if not is_interactive():
        fail(f"{question} (refusing without --yes when not on a terminal)", ExitCode.USAGE)
    if not typer.confirm(question, default=False):  # end of input: the root's one line
        fail("cancelled; nothing was changed", ExitCode.NOT_READY)
