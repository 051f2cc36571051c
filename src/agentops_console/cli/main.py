"""Root of the `agentops` command.

Each bounded context registers its commands from its own module; those modules import
only typer at module level and load heavy libraries inside the command body, so that
`agentops --help` stays fast (guarded by tests/cli/test_import_cost.py).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer._click import exceptions as click_errors  # typer vendors click
from typer.core import TyperGroup

from .. import __version__
from .common import ExitCode


class OneLineErrors(TyperGroup):
    """Click's own usage errors as one `agentops: error: ...` line, like ours, instead of
    a usage block; and end of input at a prompt as a sentence, not "Aborted!"."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        def inner() -> Any:
            return super(OneLineErrors, self).main(
                args, prog_name, complete_var, False, windows_expand_args, **extra
            )

        if not standalone_mode:
            return inner()
        try:
            code = inner()
        except click_errors.NoArgsIsHelpError as exc:
            exc.show()  # `agentops release` alone: the help is the answer
            sys.exit(exc.exit_code)
        except click_errors.UsageError as exc:
            hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
            message = " ".join(exc.format_message().split())
            typer.echo(f"agentops: error: {message}{hint}", err=True)
            sys.exit(exc.exit_code)
        except click_errors.ClickException as exc:
            typer.echo(f"agentops: error: {' '.join(exc.format_message().split())}", err=True)
            sys.exit(exc.exit_code)
        except typer.Abort as exc:
            if isinstance(exc.__cause__, KeyboardInterrupt):
                typer.echo("agentops: interrupted", err=True)
                sys.exit(ExitCode.INTERRUPTED)
            typer.echo("agentops: error: no answer (end of input); nothing was changed", err=True)
            sys.exit(ExitCode.NOT_READY)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    name="agentops",
    cls=OneLineErrors,
    help="Govern AI agents in production: live console, releases, incidents, audit.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: rendering it with rich costs ~100 ms per call
)

#: Modules that expose `register(app: typer.Typer) -> None`, in help order.
COMMAND_MODULES = (
    "agentops_console.cli.console_cmds",
    "agentops_console.cli.demo_cmds",
    "agentops_console.cli.eval_cmds",
    "agentops_console.cli.gov_cmds",
    "agentops_console.cli.sessions_cmds",
    "agentops_console.cli.watch_cmds",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"agentops {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """Govern AI agents in production: live console, releases, incidents, audit."""


def _register_all() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app)


_register_all()


def run() -> None:
    """Console-script entry point: the last line of defence for "never a traceback"."""
    import os

    try:
        app()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(ExitCode.INTERRUPTED) from None
    except BrokenPipeError:
        # the reader went away (`agentops audit list | head`): stop quietly with 1, as
        # Click does when it sees the broken pipe first
        _silence_stdout()
        raise SystemExit(1) from None
    except Exception as exc:
        if os.environ.get("AGENTOPS_DEBUG"):
            raise
        detail = " ".join(str(exc).split())[:300]
        print(
            f"agentops: error: internal error ({type(exc).__name__}: {detail}); "
            "rerun with AGENTOPS_DEBUG=1 for the traceback and report it",
            file=sys.stderr,
        )
        raise SystemExit(ExitCode.INTERNAL) from None


def _silence_stdout() -> None:
    """Python flushes stdout at exit; with the pipe gone that flush would complain."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    run()
