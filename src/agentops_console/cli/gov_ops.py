"""`agentops policy push`, `disable`, `enable` and `rollback`: governance acting on a
running agent through its endpoint, every call recorded (failures too)."""

from typing import TYPE_CHECKING, Annotated

import typer

from .common import command_group, emit_json, say
from .gov_common import AsOpt, DbOpt, JsonOpt, actor, gov_errors, open_gdb, out, runbooks_path

if TYPE_CHECKING:
    from ..governance.rollback import Plan, StepResult

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
            if json_:
                results = execute(gdb, actor=actor(as_), the_plan=the_plan, reason=reason)
                emit_json(
                    {
                        **the_plan.as_dict(),
                        "executed": True,
                        "results": [r.as_dict() for r in results],
                    }
                )
            else:  # the plan once, each step with what became of it as it ends
                _print_header(the_plan)
                shown = Steps()
                try:
                    execute(gdb, actor=actor(as_), the_plan=the_plan, reason=reason, progress=shown)
                finally:
                    for i, step in enumerate(the_plan.steps[shown.count :], shown.count + 1):
                        out(f"  {i:>2}. [not run] {step.text}")
        say(f"{agent} rolled back to {to}")


class Steps:
    """Prints each rollback step as it ends: `done`, `you ` (manual), or `failed`."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, result: "StepResult") -> None:
        self.count += 1
        label = {"ok": "done", "manual": "you "}.get(result.outcome, result.outcome)
        out(f"  {self.count:>2}. [{label}] {result.step.text}")


def _print_header(the_plan: "Plan") -> None:
    frm = the_plan.current.version if the_plan.current else "(nothing live)"
    out(
        f"rollback {the_plan.agent}: {frm} -> {the_plan.target.version}  "
        f"runbook {the_plan.runbook or '-'}"
    )
    for warning in the_plan.warnings:
        say(f"warning: {warning}")


def _print_plan(the_plan: "Plan") -> None:
    _print_header(the_plan)
    for i, step in enumerate(the_plan.steps, 1):
        kind = "auto" if step.kind != "manual" else "you "
        out(f"  {i:>2}. [{kind}] {step.text}")


def register(app: typer.Typer) -> None:
    app.add_typer(policy_app, name="policy")
    app.command("disable")(disable)
    app.command("enable")(enable)
    app.command("rollback")(rollback)
