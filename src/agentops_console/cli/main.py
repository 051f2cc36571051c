"""Root of the `agentops` command.

Each bounded context registers its commands from its own module; those modules import
only typer at module level and load heavy libraries inside the command body. The root
lists its commands from a fixed table and imports a command's module only when that
command runs (or its help is asked for): building every command's parameters on each
start cost about as much as importing typer. `agentops --help` stays fast (guarded by
tests/cli/test_import_cost.py; the table by tests/cli/test_lazy_commands.py).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator, MutableMapping, Sequence
from typing import Any

import typer
import typer.main
from typer._click import Command, Context, HelpFormatter  # typer vendors click
from typer._click import exceptions as click_errors
from typer._click.utils import make_default_short_help
from typer.core import TyperGroup

from .. import __version__

#: Longest exception text quoted in an internal-error line.
_INTERNAL_DETAIL_CHARS = 300


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
            from .common import ExitCode  # here, not at the top: `--help` never needs it

            if isinstance(exc.__cause__, KeyboardInterrupt):
                typer.echo("agentops: interrupted", err=True)
                sys.exit(ExitCode.INTERRUPTED)
            typer.echo("agentops: error: no answer (end of input); nothing was changed", err=True)
            sys.exit(ExitCode.NOT_READY)
        sys.exit(code if isinstance(code, int) else 0)


#: Top-level command -> (module in agentops_console.cli that registers it, its one-line
#: help), in help order. tests/cli/test_lazy_commands.py holds it equal to what the
#: modules register.
COMMANDS: dict[str, tuple[str, str]] = {
    "console": (
        "console_cmds",
        "The live operations console: fleet, sessions, alerts, approvals; kill, disable, budget.",
    ),
    "status": (
        "console_cmds",
        "Print the fleet and its running sessions once; exit 5 only when no agent answers.",
    ),
    "demo": (
        "demo_cmds",
        "Start a simulated fleet on loopback and watch it misbehave (q or Ctrl-C stops it).",
    ),
    "init": ("gov_registry", "Create the governance DB (or upgrade an old one)."),
    "signoff": (
        "gov_release",
        "Review a release question by question against its policy, then approve or reject.",
    ),
    "disable": ("gov_ops", "Kill switch: stop a workflow's sessions and refuse new ones."),
    "enable": ("gov_ops", "Re-enable a disabled workflow."),
    "rollback": (
        "gov_ops",
        "Print the rollback plan; with --yes carry it out, recording each step.",
    ),
    "report": (
        "gov_incident",
        "MTTD, MTTA, MTTR per agent and overall; sign-off coverage of live releases.",
    ),
    "export": (
        "gov_audit",
        "Write registry, owners, releases and sign-offs as TOML files for review in git.",
    ),
    "import": (
        "gov_audit",
        "Load exported TOML back; running it twice changes nothing the second time.",
    ),
    "watch": (
        "watch_cmds",
        "Follow every agent: record finished sessions, open incidents, page, run the rules.",
    ),
    "eval": ("eval_cmds", "Evaluate a release candidate's behaviour against a suite."),
    "agent": ("gov_registry", "Register agents: endpoint, token env vars, workflows, risk."),
    "owner": ("gov_registry", "Owners: one person per role per agent."),
    "rubric": ("gov_release", "Deployment rubrics: the questions a release must answer."),
    "release": ("gov_release", "Releases: propose, review state, the CI gate, promote."),
    "policy": ("gov_ops", "Cedar policy bundles of releases."),
    "runbook": ("gov_incident", "Incident runbooks (runbooks/*.md)."),
    "incident": (
        "gov_incident",
        "Incidents: open, ack, note, resolve; list them; show one with its timeline.",
    ),
    "audit": ("gov_audit", "The hash-chained audit log of every governance action."),
    "sessions": (
        "sessions_cmds",
        "Recorded sessions (the records DB): list, show, export, import.",
    ),
}

#: Modules that expose `register(app: typer.Typer) -> None`: together they register
#: every command in COMMANDS (the eager path, kept for the drift test and for tools).
COMMAND_MODULES = (
    "agentops_console.cli.console_cmds",
    "agentops_console.cli.demo_cmds",
    "agentops_console.cli.eval_cmds",
    "agentops_console.cli.gov_cmds",
    "agentops_console.cli.sessions_cmds",
    "agentops_console.cli.watch_cmds",
)

#: Shared by the root and the private apps commands are built in, so a lazily built
#: command renders its help exactly as an eagerly registered one would.
_SETTINGS: dict[str, Any] = {
    "add_completion": False,
    "pretty_exceptions_enable": False,
    "rich_markup_mode": None,  # plain help: rendering it with rich costs ~100 ms per call
}

#: Built commands, shared by every root group Typer makes (CliRunner makes one per call).
_BUILT: dict[str, Command] = {}


def build_command(name: str) -> Command:
    """Import the module that defines `name`, register it into a private Typer and convert
    only that command; cached, so each command is built once per process."""
    if name in _BUILT:
        return _BUILT[name]
    module, _ = COMMANDS[name]
    scratch = typer.Typer(**_SETTINGS)
    importlib.import_module(f"{__package__}.{module}").register(scratch)
    scratch.registered_commands = [c for c in scratch.registered_commands if c.name == name]
    scratch.registered_groups = [g for g in scratch.registered_groups if g.name == name]
    if not scratch.registered_commands and not scratch.registered_groups:
        raise RuntimeError(f"cli.{module} does not register {name!r} (see main.COMMANDS)")
    command = typer.main.get_group(scratch).commands[name]
    _BUILT[name] = command
    return command


class _Commands(MutableMapping[str, Command]):
    """A group's `commands` as Click and Typer code read it (suggestions for a typo, tests
    walking the tree): every name in the table, each built on first access."""

    def __init__(self, added: dict[str, Command]) -> None:
        self._added = added  # registered on the root itself, not through the table

    @property
    def added(self) -> dict[str, Command]:
        return {n: c for n, c in self._added.items() if n not in COMMANDS}

    def __getitem__(self, name: str) -> Command:
        if name in self._added:
            return self._added[name]
        if name not in COMMANDS:
            raise KeyError(name)
        return build_command(name)

    def __setitem__(self, name: str, command: Command) -> None:
        self._added[name] = command

    def __delitem__(self, name: str) -> None:
        del self._added[name]

    def __iter__(self) -> Iterator[str]:
        yield from COMMANDS
        yield from (n for n in self._added if n not in COMMANDS)

    def __len__(self) -> int:
        return len(COMMANDS) + sum(1 for n in self._added if n not in COMMANDS)


class LazyCommands(OneLineErrors):
    """The root group: lists commands from COMMANDS and builds one only when it is used."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = _Commands(dict(self.commands))

    def list_commands(self, ctx: Context) -> list[str]:
        return list(self.commands)

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: Context, formatter: HelpFormatter) -> None:
        """The listing from the table, shortened as Click shortens a command's help."""
        rows = [(name, short) for name, (_, short) in COMMANDS.items()]
        added = self.commands.added if isinstance(self.commands, _Commands) else {}
        rows += [(n, c.get_short_help_str(sys.maxsize)) for n, c in added.items() if not c.hidden]
        limit = formatter.width - 6 - max(len(name) for name, _ in rows)
        with formatter.section("Commands"):
            formatter.write_dl([(name, make_default_short_help(h, limit)) for name, h in rows])


app = typer.Typer(
    name="agentops",
    cls=LazyCommands,
    help="Govern AI agents in production: live console, releases, incidents, audit.",
    no_args_is_help=True,
    **_SETTINGS,
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


def register_all(target: typer.Typer) -> None:
    """Every command, registered eagerly (what the root did before it was lazy)."""
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(target)


def run() -> None:
    """Console-script entry point: the last line of defence for "never a traceback"."""
    import os

    try:
        app()
    except KeyboardInterrupt:
        from .common import ExitCode

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
        from ..protocol.text import one_line
        from .common import ExitCode

        detail = one_line(exc, _INTERNAL_DETAIL_CHARS)
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
