"""Rollback: the plan from the live release's question-4 answer and its runbook, and
carrying it out step by step with each step audited.

Automated steps: disable the workflows, push the earlier release's policy, mark the
earlier release live, note it on the agent's open incidents. The runbook's and the
answer's own steps are printed for the people doing the rest.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .db import GovernanceDB
from .errors import Conflict, GovernanceError
from .incidents import add_note, list_incidents
from .lifecycle import make_live
from .registry import get_agent
from .releases import Release, get_release, live_release, rollback_problem
from .runbooks import find_runbook

StepKind = Literal["disable", "push_policy", "mark_live", "note_incident", "manual"]


@dataclass(frozen=True, slots=True)
class Step:
    kind: StepKind
    text: str
    arg: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "text": self.text, "arg": self.arg}


@dataclass(frozen=True, slots=True)
class Plan:
    agent: str
    target: Release
    current: Release | None
    runbook: str | None
    steps: tuple[Step, ...]
    warnings: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "to": self.target.version,
            "from": self.current.version if self.current else None,
            "runbook": self.runbook,
            "steps": [s.as_dict() for s in self.steps],
            "warnings": list(self.warnings),
        }


def plan(gdb: GovernanceDB, *, agent: str, to: str, runbooks: Path) -> Plan:
    get_agent(gdb, agent)
    target = get_release(gdb, agent, to)
    problem = rollback_problem(gdb, target)
    if problem is not None:
        raise Conflict(problem)
    current = live_release(gdb, agent)
    source = current or target
    answer = source.answer("q4")
    workflows = [w for w in answer.get("disable_workflows", []) if isinstance(w, str)]
    warnings: list[str] = []
    steps = [Step("disable", f"disable workflow {w}", w) for w in workflows]
    steps.append(Step("push_policy", f"push the policy of {to} to the endpoint", to))
    steps.append(Step("mark_live", f"mark {to} live", to))
    for incident in list_incidents(gdb, agent=agent, status="open"):
        steps.append(
            Step("note_incident", f"note the rollback on incident {incident.id}", str(incident.id))
        )
    runbook_name = answer.get("runbook") if isinstance(answer.get("runbook"), str) else None
    manual: list[tuple[int, str]] = []  # (specificity, text): runbook 0, answer 1, plan 2
    if runbook_name:
        try:
            book = find_runbook(runbooks, runbook_name)
            names = {"AGENT": agent, "PREVIOUS": to, "VERSION": current.version if current else to}
            manual += [(0, f"runbook {book.name}: {_fill(s, names)}") for s in book.steps]
        except GovernanceError as exc:
            warnings.append(str(exc))
    manual += [(1, f"release answer: {s}") for s in answer.get("steps", []) if isinstance(s, str)]
    if workflows:
        commands = "; ".join(f"agentops enable {agent} {w}" for w in workflows)
        manual.append((2, f"after checking the agent, re-enable: {commands}"))
    covered = {"rollback"}  # this plan is the rollback: a step that runs it is circular
    if not workflows:
        covered.add("re-enable")  # nothing was disabled
    if any(s.kind == "note_incident" for s in steps):
        covered.add("open-incident")  # one is open and the rollback is noted on it
    steps += [Step("manual", text) for text in _each_once(manual, covered)]
    return Plan(agent, target, current, runbook_name, tuple(steps), tuple(warnings))


#: What a manual step is about, when the runbook, the release's answer and the plan may
#: each say it: a plan lists each subject once, in the words of the most specific source.
_SUBJECTS = (
    ("rollback", re.compile(r"\bagentops rollback\b")),
    ("open-incident", re.compile(r"\bagentops incident open\b")),
    ("redeploy", re.compile(r"\bre-?deploy", re.I)),
    ("re-enable", re.compile(r"\bre-?enable\b|\bagentops enable\b", re.I)),
    ("console-check", re.compile(r"\bconsole\b.*\bpolicy version\b", re.I)),
)


def _subject(text: str) -> str | None:
    return next((name for name, pattern in _SUBJECTS if pattern.search(text)), None)


def _each_once(steps: list[tuple[int, str]], covered: set[str]) -> list[str]:
    """Manual steps with each subject once, where it first comes up, worded by its most
    specific source; steps on a subject the plan already covers, and exact repeats, go."""
    slots: list[tuple[str | None, str]] = []  # (subject, text); a subject's text may improve
    best: dict[str, int] = {}  # subject -> index in slots
    ranks: dict[str, int] = {}
    for rank, text in steps:
        subject = _subject(text.split(": ", 1)[-1])
        if subject is None:
            if (None, text) not in slots:
                slots.append((None, text))
        elif subject in covered:
            continue
        elif subject not in best:
            best[subject] = len(slots)
            slots.append((subject, text))
            ranks[subject] = rank
        elif rank > ranks[subject]:
            slots[best[subject]] = (subject, text)
            ranks[subject] = rank
    return [text for _, text in slots]


def _fill(text: str, names: dict[str, str]) -> str:
    """Runbooks are written for any agent (AGENT, VERSION, PREVIOUS); a plan is for one."""
    return re.sub(r"\b(AGENT|VERSION|PREVIOUS)\b", lambda m: names[m.group(1)], text)


@dataclass(slots=True)
class StepResult:
    step: Step
    outcome: Literal["ok", "failed", "manual"]
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {**self.step.as_dict(), "outcome": self.outcome, "detail": self.detail}


def execute(
    gdb: GovernanceDB,
    *,
    actor: str,
    the_plan: Plan,
    reason: str = "",
    progress: Callable[[StepResult], None] | None = None,
) -> list[StepResult]:
    """Carry out the automated steps in order, each audited. Stops at the first failure,
    recording it, so a half-done rollback is visible in the audit log. `progress` hears of
    each step as it ends (the failed one too), so a person sees how far it got."""
    agent = the_plan.agent
    target = f"{agent}@{the_plan.target.version}"
    why = reason or f"rollback to {the_plan.target.version}"
    done: list[StepResult] = []
    with gdb.transaction(actor) as tx:
        tx.audit("rollback.start", target, agent=agent, details=the_plan.as_dict())
    for step in the_plan.steps:
        try:
            _run(gdb, actor, agent, step, why)
        except GovernanceError as exc:
            with gdb.transaction(actor) as tx:
                details = {"step": step.as_dict(), "error": str(exc)}
                tx.audit("rollback.failed", target, agent=agent, details=details)
            if progress is not None:
                progress(StepResult(step, "failed", str(exc)))
            raise
        done.append(StepResult(step, "manual" if step.kind == "manual" else "ok"))
        if progress is not None:
            progress(done[-1])
    with gdb.transaction(actor) as tx:
        tx.audit("rollback.done", target, agent=agent, details={"steps": len(done)})
    return done


def _run(gdb: GovernanceDB, actor: str, agent: str, step: Step, why: str) -> None:
    from .remote import push_policy, set_workflow

    if step.kind == "disable":
        set_workflow(
            gdb,
            actor=actor,
            agent=agent,
            workflow=step.arg,
            enabled=False,
            reason=why,
            registered_only=False,
        )
    elif step.kind == "push_policy":
        push_policy(gdb, actor=actor, agent=agent, version=step.arg, rollback=True)
    elif step.kind == "mark_live":
        with gdb.transaction(actor) as tx:
            release = get_release(gdb, agent, step.arg)
            make_live(tx, release, previous_status="rolled_back", action="rollback.mark_live")
    elif step.kind == "note_incident":
        add_note(gdb, actor=actor, incident_id=int(step.arg), text=f"rolled back {agent}: {why}")
