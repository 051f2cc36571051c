"""`agentops demo`: a live fleet of simulated agents, with the console or headless.

Only typer and the standard library load at import time; the runtime, the console and
the governance DB load inside the command, so `agentops --help` stays fast.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from .common import ExitCode, cli_errors, emit_json, fail, say
from .gov_common import AsOpt


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    seed: Annotated[
        int | None,
        typer.Option("--seed", help="Seed for the traffic script (default: the scenario's)."),
    ] = None,
    speed: Annotated[
        float, typer.Option("--speed", help="Play scenario time this many times faster.")
    ] = 1.0,
    db: Annotated[
        Path | None,
        typer.Option("--db", help="Governance DB to seed and audit into (default: a temp file)."),
    ] = None,
    headless: Annotated[
        bool, typer.Option("--headless", help="No console: run, then print what happened.")
    ] = False,
    duration: Annotated[
        float | None,
        typer.Option("--duration", help="Headless: wall-clock seconds to run (default 30)."),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Headless: the report as JSON.")] = False,
    auto_respond: Annotated[
        bool,
        typer.Option(
            "--auto-respond",
            help="Play the operator: kill runaway sessions, disable workflows that tried to "
            "export data, deny privilege escalations.",
        ),
    ] = False,
    readonly: Annotated[
        bool, typer.Option("--readonly", help="Console: watch only, no actions.")
    ] = False,
    scenario: Annotated[
        Path | None,
        typer.Option(
            "--scenario", help="Scenario TOML (default: fixtures/scenarios/it-support-story)."
        ),
    ] = None,
    operator: AsOpt = None,
) -> None:
    """Start a simulated fleet on loopback and watch it misbehave (q or Ctrl-C stops it)."""
    from ..governance.errors import BadInput

    with cli_errors((BadInput, ExitCode.USAGE)):
        if not 0 < speed <= 1000:
            fail("--speed must be a number above 0 and at most 1000", ExitCode.USAGE)
        if duration is not None and not 0 < duration <= 24 * 3600:
            fail("--duration must be a number of seconds above 0, at most a day", ExitCode.USAGE)
        if not headless:
            for flag, given in (("--json", json_out), ("--duration", duration is not None)):
                if given:
                    fail(f"{flag} needs --headless (the console runs until you quit it)")
            if not (sys.stdin.isatty() and sys.stdout.isatty()):
                fail("the demo console needs a terminal; use --headless in scripts and CI")
        story = _load(scenario)
        try:
            if headless:
                _headless(story, seed, speed, duration or 30.0, db, json_out, auto_respond)
            else:
                _interactive(story, seed, speed, db, operator, readonly, auto_respond)
        except KeyboardInterrupt:
            say("agentops: interrupted; the fleet is stopped")
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        except OSError as exc:
            fail(f"cannot start the demo fleet: {exc.strerror or exc}", ExitCode.UNREACHABLE)


def _load(path: Path | None) -> Any:
    from ..demo.scenario import ScenarioError, load_scenario

    try:
        return load_scenario(path)
    except ScenarioError as exc:
        fail(str(exc), ExitCode.USAGE)


def _headless(
    story: Any,
    seed: int | None,
    speed: float,
    duration: float,
    db: Path | None,
    json_out: bool,
    auto_respond: bool,
) -> None:
    from ..demo.headless import live_demo
    from ..demo.report import render_text

    with live_demo(
        story,
        seed=seed,
        speed=speed,
        until_s=duration * speed,
        auto_respond=auto_respond,
        db=db,
        seed_db=_seed,
    ) as run:
        run.fleet.wait(duration)
        ended = time.time()
    report = run.report(ended_at=ended)
    if json_out:
        emit_json(report)
    else:
        typer.echo(render_text(report), nl=False)


def _interactive(
    story: Any,
    seed: int | None,
    speed: float,
    db: Path | None,
    operator: str | None,
    readonly: bool,
    auto_respond: bool,
) -> None:
    from ..demo.launch import run_interactive
    from ..governance.identity import resolve_operator

    try:
        import agentops_console.console.app  # noqa: F401
    except ImportError:
        fail("the console is not available in this build; try --headless", ExitCode.NOT_READY)
    run_interactive(
        story,
        seed=seed,
        speed=speed,
        db=db,
        operator=resolve_operator(operator),
        readonly=readonly,
        auto_respond=auto_respond,
        seed_db=_seed,
    )


def _seed(db: Path, fleet: Any) -> None:
    """Register the fleet in the governance DB; a demo without one still runs."""
    try:
        from ..demo.seed import SeedUnavailable, seed_governance
    except ImportError:
        return
    from ..governance.errors import GovernanceError

    try:
        result = seed_governance(db, fleet)
    except SeedUnavailable as exc:
        say(f"agentops: note: governance DB not seeded ({exc})")
        return
    except GovernanceError as exc:
        fail(f"demo governance DB {db}: {exc}", ExitCode.DATABASE)
    say(f"agentops: demo governance DB {result.path}: {result.summary()}")
