"""Root of the `agentops` command.

Each bounded context registers its commands from its own module; those modules import
only typer at module level and load heavy libraries inside the command body, so that
`agentops --help` stays fast (guarded by tests/cli/test_import_cost.py).
"""

from __future__ import annotations

import importlib
import sys

import typer

from .. import __version__

app = typer.Typer(
    name="agentops",
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
    "agentops_console.cli.gov_cmds",
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
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None


if __name__ == "__main__":
    run()
