"""Play one planned session against a real Runtime, the way an agent's own loop would.

The agent here is deliberately naive: a failed or denied tool call is shrugged off and the
next one is tried, which is exactly how runaway loops and repeated unauthorized attempts
happen in production. Only the runtime's guard (a kill, a disabled workflow, a budget)
stops it, or the fleet shutting down. It reports how each task ended: `resolved`, `partial`
when a tool failed or was refused or the fleet stopped it, `escalated` when a person
turned a checkpoint down; a kill or a budget leaves the `with` block and is `failed`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from ..runtime import BudgetExceeded, PolicyDenied, Runtime, Session, SessionKilled
from .script import SessionPlan, Step


class ToolFailure(RuntimeError):
    """A simulated tool error (a timeout upstream); the agent catches it and goes on."""


@dataclass(frozen=True, slots=True)
class Pace:
    """Scenario seconds to wall seconds; sleeps end early when `halt` is set."""

    speed: float
    halt: threading.Event

    def sleep(self, scenario_s: float) -> bool:
        """True when the session must stop (the fleet stops or the agent went down)."""
        if scenario_s <= 0:
            return self.halt.is_set()
        return self.halt.wait(scenario_s / self.speed)


def play_session(rt: Runtime, plan: SessionPlan, pace: Pace) -> str:
    """Run the plan; returns how it ended: a session status, or "refused" at the door."""
    try:
        session = rt.session(
            plan.workflow,
            plan.principal,
            session_id=plan.session_id,
            approved_change=plan.approved_change,
        )
    except SessionKilled:
        return "refused"  # the workflow is disabled
    trouble: list[str] = []
    try:
        with session as s:
            s.input(f"{plan.workflow} request from {plan.principal}")
            for loop in plan.loops:
                if loop.human:
                    s.human_input()
                if pace.sleep(loop.think_s):
                    _stop(s)
                    break
                s.llm_call(
                    loop.model,
                    loop.tokens_in,
                    loop.tokens_out,
                    latency_ms=round(loop.think_s * 1000, 1),
                )
                for step in loop.steps:
                    if _call_tool(s, step, pace, trouble):
                        _stop(s)
                        return s.status
            if s.ended is None:
                _report(s, trouble)
    except (SessionKilled, BudgetExceeded):
        pass  # the guard stopped the session; its status says why
    return session.status


def _stop(s: Session) -> None:
    s.outcome("partial", "the fleet stopped before the task was done")
    s.end("stopped")


def _report(s: Session, trouble: list[str]) -> None:
    if any("human checkpoint" in t for t in trouble):
        s.outcome("escalated", "a person turned down a step; handed back to the requester")
    elif trouble:
        s.outcome("partial", trouble[-1])
    else:
        s.outcome("resolved")
    s.output(f"{s.workflow}: {s.tool_calls} tool calls, {len(trouble)} refused or failed")


def _call_tool(s: Session, step: Step, pace: Pace, trouble: list[str]) -> bool:
    """One guarded tool call; True when the session must stop for the fleet."""
    try:
        with s.tool_call(step.tool, step.arguments) as call:
            halted = pace.sleep(step.latency_s)
            if step.confidence is not None:
                call.retrieved(step.confidence, step.context_tokens or 0)
            if step.fails is not None:
                raise ToolFailure(step.fails)
            call.output = _output(step)
            return halted
    except (PolicyDenied, ToolFailure) as exc:
        trouble.append(f"{step.tool}: {exc}")
        return pace.halt.is_set()  # a naive agent shrugs and goes on


def _output(step: Step) -> dict[str, object]:
    if step.confidence is not None:
        return {"hits": 3, "confidence": step.confidence, "context_tokens": step.context_tokens}
    return {"status": "done", "tool": step.tool}
