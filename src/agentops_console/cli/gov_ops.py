"""`agentops policy push`, `disable`, `enable` and `rollback`: governance acting on a
running agent through its endpoint, every call recorded (failures too)."""

from typing import Annotated

import typer

from .common import command_group, confirm_or_yes, emit_json, say
from .gov_common import AsOpt, DbOpt, JsonOpt, actor, gov_errors, open_gdb, out, runbooks_path

policy_app = command_group("Cedar policy bundles of releases.")


@policy_app.command("push")
def policy_push(
    agent: str,
    version: Annotated[str | None, typer.Argument(help="Release (default: the live one).")] = None,
    db: DbOpt = None,
    as_: AsOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Send a release's Cedar bundle to the agent (PUT /v1/policy)."""
    with gov_errors():
        from ..governance.remote import push_policy

        with open_gdb(db) as gdb:
            answer = push_policy(gdb, actor=actor(as_), agent=agent, version=version)
        if json_:
            emit_json(answer)
        say(f"{agent} now runs policy {answer.get('version')} ({answer.get('policies')} policies)")


def _workflow(
    agent: str, workflow: str, enabled: bool, reason: str, db: object, as_: str | None, json_: bool
) -> None:
    with gov_errors():
        from pathlib import Path

        from ..governance.remote import set_workflow

        with open_gdb(db if isinstance(db, Path) else None) as gdb:
            answer = set_workflow(
                gdb,
                actor=actor(as_),
                agent=agent,
                workflow=workflow,
                enabled=enabled,
                reason=reason,
            )
        if json_:
            emit_json(answer)
        state = (
            "enabled"
            if enabled
            else f"disabled ({answer.get('sessions_stopped', 0)} sessions stopped)"
        )
        say(f"{agent} workflow {workflow}: {state}")


def disable(
    agent: str,
    workflow: str,
    reason: Annotated[str, typer.Option(help="Why (recorded and sent to the agent).")],
    db: DbOpt = None,
    as_: AsOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Kill switch: stop a workflow's sessions and refuse new ones."""
    _workflow(agent, workflow, False, reason, db, as_, json_)


def enable(
    agent: str,
    workflow: str,
    reason: Annotated[str, typer.Option(help="Why (recorded).")] = "",
    db: DbOpt = None,
    as_: AsOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Re-enable a disabled workflow."""
    _workflow(agent, workflow, True, reason, db, as_, json_)


def rollback(
    agent: str,
    to: Annotated[str, typer.Option("--to", help="Earlier release that passed the gate.")],
    yes: Annotated[bool, typer.Option("--yes", help="Carry out the plan.")] = False,
    reason: Annotated[str, typer.Option(help="Why (recorded).")] = "",
    db: DbOpt = None,
    as_: AsOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Print the rollback plan; with --yes carry it out, recording each step."""
    with gov_errors():
        from ..governance.rollback import execute, plan

        with open_gdb(db) as gdb:
            the_plan = plan(gdb, agent=agent, to=to, runbooks=runbooks_path())
            if not yes:
                if json_:
                    emit_json({**the_plan.as_dict(), "executed": False})
                    return
                _print_plan(the_plan)
                say("dry run: pass --yes to carry out the automated steps")
                return
            if not json_:
                _print_plan(the_plan)
            confirm_or_yes(f"roll {agent} back to {to}?", yes)
            results = execute(gdb, actor=actor(as_), the_plan=the_plan, reason=reason)
        if json_:
            emit_json(
                {**the_plan.as_dict(), "executed": True, "results": [r.as_dict() for r in results]}
            )
        else:
            for r in results:
                out(f"  [{r.outcome}] {r.step.text}")
        say(f"{agent} rolled back to {to}")


def _print_plan(the_plan: object) -> None:
    from ..governance.rollback import Plan

    assert isinstance(the_plan, Plan)
    frm = the_plan.current.version if the_plan.current else "(nothing live)"
    out(
        f"rollback {the_plan.agent}: {frm} -> {the_plan.target.version}  "
        f"runbook {the_plan.runbook or '-'}"
    )
    for i, step in enumerate(the_plan.steps, 1):
        kind = "auto" if step.kind != "manual" else "you "
        out(f"  {i:>2}. [{kind}] {step.text}")
    for warning in the_plan.warnings:
        say(f"warning: {warning}")


def register(app: typer.Typer) -> None:
    app.add_typer(policy_app, name="policy")
    app.command("disable")(disable)
    app.command("enable")(enable)
    app.command("rollback")(rollback)
