"""The root lists its commands from a fixed table and builds one only when it is used: the
table must say exactly what the modules register, and the lazy root must behave as the
eager one did (help, errors, exit codes)."""

from __future__ import annotations

import sys

import pytest
import typer
import typer.main
from typer._click import Context
from typer.core import TyperGroup
from typer.testing import CliRunner

from agentops_console.cli.main import (
    _SETTINGS,
    COMMANDS,
    LazyCommands,
    OneLineErrors,
    app,
    build_command,
    main,
    register_all,
)

runner = CliRunner()


def eager_app() -> typer.Typer:
    """The root as it was before it was lazy: every module registered up front."""
    eager = typer.Typer(
        name="agentops",
        cls=OneLineErrors,
        help="Govern AI agents in production: live console, releases, incidents, audit.",
        no_args_is_help=True,
        **_SETTINGS,
    )
    eager.callback()(main)
    register_all(eager)
    return eager


def _help(group: TyperGroup, width: int) -> str:
    ctx = Context(group, info_name="agentops", terminal_width=width, max_content_width=width)
    return group.get_help(ctx)


def test_table_names_order_and_help_are_what_the_modules_register() -> None:
    eager = typer.main.get_group(eager_app())
    ctx = Context(eager, info_name="agentops")
    assert eager.list_commands(ctx) == list(COMMANDS)
    registered = {n: eager.commands[n].get_short_help_str(sys.maxsize) for n in eager.commands}
    assert registered == {name: short for name, (_, short) in COMMANDS.items()}


def test_each_name_is_built_from_the_module_the_table_names() -> None:
    eager = typer.main.get_group(eager_app())
    for name in COMMANDS:
        lazy = build_command(name)
        assert build_command(name) is lazy  # built once per process
        ctx = Context(eager, info_name="agentops")
        assert lazy.get_help(Context(lazy, info_name=name, parent=ctx)) == eager.commands[
            name
        ].get_help(Context(eager.commands[name], info_name=name, parent=ctx)), name


@pytest.mark.parametrize("width", [60, 80, 200])
def test_root_help_is_the_eager_help(width: int) -> None:
    lazy = typer.main.get_command(app)
    assert isinstance(lazy, LazyCommands)
    assert _help(lazy, width) == _help(typer.main.get_group(eager_app()), width)


def test_no_arguments_print_the_help() -> None:
    result = runner.invoke(app, [])
    assert result.exit_code == 2
    assert "Commands:" in result.stderr and "sessions" in result.stderr  # as Click does


def test_unknown_command_is_one_line_with_a_suggestion() -> None:
    result = runner.invoke(app, ["releas"])
    assert result.exit_code == 2
    assert result.stderr == (
        "agentops: error: No such command 'releas'. Did you mean 'release'? "
        "(see `agentops --help`)\n"
    )
    nothing_close = runner.invoke(app, ["zzz"])
    assert nothing_close.exit_code == 2
    assert nothing_close.stderr == (
        "agentops: error: No such command 'zzz'. (see `agentops --help`)\n"
    )


def test_group_help_version_and_group_errors() -> None:
    group_help = runner.invoke(app, ["release", "--help"])
    assert group_help.exit_code == 0
    assert group_help.stdout.startswith("Usage: agentops release [OPTIONS] COMMAND [ARGS]...")
    assert runner.invoke(app, ["--version"]).stdout.startswith("agentops ")
    typo = runner.invoke(app, ["release", "lst"])
    assert typo.exit_code == 2
    assert typo.stderr.startswith("agentops: error: No such command 'lst'. Did you mean 'list'?")
    assert typo.stderr.count("\n") == 1


def test_a_command_added_on_the_root_itself_is_listed_and_runs() -> None:
    extra = typer.Typer(name="agentops", cls=LazyCommands, **_SETTINGS)
    extra.callback()(main)

    @extra.command("hello")
    def hello() -> None:
        """Say hello (a command outside the table)."""
        typer.echo("hi")

    listing = runner.invoke(extra, ["--help"]).stdout
    assert listing.rstrip().splitlines()[-1].split()[:3] == ["hello", "Say", "hello"]
    assert runner.invoke(extra, ["hello"]).stdout == "hi\n"
    assert runner.invoke(extra, ["audit", "--help"]).exit_code == 0
