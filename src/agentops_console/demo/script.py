"""The traffic script: every session the fleet will run, decided up front from the seed.

All randomness lives here and nowhere else, drawn from `random.Random` seeded per cycle
and per agent, so the same seed and scenario give the same sessions, arguments, token
counts and trouble, in the same order, whatever the speed factor or the machine's load.
Times are scenario seconds; the fleet maps them onto the wall clock.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .scenario import Agent, Scenario, Trouble, Workflow

#: What a flaky tool raises in the runaway loop; the agent catches it and retries.
TIMEOUT_ERROR = "upstream search timed out after 30s"


@dataclass(frozen=True, slots=True)
class Step:
    tool: str
    arguments: dict[str, Any]
    latency_s: float
    #: A retrieval: its confidence and the context size it leaves the model with.
    confidence: float | None = None
    context_tokens: int | None = None
    #: The tool fails with this error (the body raises; the agent decides what next).
    fails: str | None = None


@dataclass(frozen=True, slots=True)
class Loop:
    """One LLM call and the tool calls it leads to."""

    model: str
    tokens_in: int
    tokens_out: int
    think_s: float
    steps: tuple[Step, ...]
    #: A person spoke before this loop (resets the consecutive tool call count).
    human: bool = True


@dataclass(frozen=True, slots=True)
class SessionPlan:
    at_s: float
    agent: str
    workflow: str
    principal: str
    session_id: str
    #: "ordinary", or the trouble kind this session plays.
    kind: str
    loops: tuple[Loop, ...]
    approved_change: bool = False


@dataclass(frozen=True, slots=True)
class OutagePlan:
    at_s: float
    agent: str
    #: None: the endpoint stays down.
    down_s: float | None
    kind: str = "agent_outage"


PlanItem = SessionPlan | OutagePlan


def plan(scenario: Scenario, seed: int, until_s: float | None = None) -> Iterator[PlanItem]:
    """Every planned item in time order, cycle after cycle (endless unless `until_s`)."""
    cycle_s = scenario.model.scenario.cycle_s
    for cycle in itertools.count():
        start = cycle * cycle_s
        if until_s is not None and start >= until_s:
            return
        for item in plan_cycle(scenario, seed, cycle):
            if until_s is not None and item.at_s >= until_s:
                return
            yield item


def plan_cycle(scenario: Scenario, seed: int, cycle: int) -> list[PlanItem]:
    start = cycle * scenario.model.scenario.cycle_s
    end = start + scenario.model.scenario.cycle_s
    items: list[PlanItem] = []
    for agent in scenario.agents:
        items += _ordinary(agent, random.Random(f"{seed}:{cycle}:{agent.name}"), start, end)
    for index, trouble in enumerate(scenario.trouble):
        if trouble.kind == "agent_outage" and trouble.down_s is None and cycle > 0:
            continue  # an agent that stays down goes down once
        rng = random.Random(f"{seed}:{cycle}:trouble:{index}")
        items.append(_trouble(scenario.agent(trouble.agent), trouble, rng, start + trouble.at_s))
    # Stable: ties keep scenario order, so the story reads the same every time.
    items.sort(key=lambda item: item.at_s)
    return items


def trouble_order(scenario: Scenario, seed: int, until_s: float) -> list[tuple[float, str, str]]:
    """(scenario time, kind, agent) of the scripted trouble; what determinism promises."""
    return [
        (round(item.at_s, 3), item.kind, item.agent)
        for item in plan(scenario, seed, until_s)
        if item.kind != "ordinary"
    ]


# -- ordinary traffic ----------------------------------------------------------------------
def _ordinary(agent: Agent, rng: random.Random, start: float, end: float) -> list[SessionPlan]:
    rate = agent.sessions_per_minute / 60.0
    sessions = []
    # The first cycle opens with a session right away: a newcomer sees life immediately.
    at = start + (0.2 if start == 0 else rng.expovariate(rate))
    weights = [w.weight for w in agent.workflows]
    while at < end:
        workflow = rng.choices(agent.workflows, weights)[0]
        principal = rng.choice(agent.principals)
        sessions.append(
            SessionPlan(
                at_s=round(at, 3),
                agent=agent.name,
                workflow=workflow.name,
                principal=principal,
                session_id=_session_id(rng),
                kind="ordinary",
                loops=_ordinary_loops(agent, workflow, principal, rng),
                approved_change=workflow.approved_change,
            )
        )
        at += rng.expovariate(rate)
    return sessions


def _ordinary_loops(
    agent: Agent, workflow: Workflow, principal: str, rng: random.Random
) -> tuple[Loop, ...]:
    tools = {t.name: t for t in agent.tools}
    loops = []
    for _ in range(rng.randint(*workflow.loops)):
        tokens_in = rng.randint(*workflow.tokens_in)
        steps = []
        for name in workflow.steps:
            tool = tools[name]
            example = rng.choice(tool.examples) if tool.examples else {}
            retrieval = tool.category == "retrieval"
            steps.append(
                Step(
                    tool=name,
                    arguments=_fill(example, principal, agent.tenant),
                    latency_s=round(rng.uniform(*tool.latency_s), 3),
                    confidence=round(rng.uniform(*tool.confidence), 3) if retrieval else None,
                    context_tokens=tokens_in if retrieval else None,
                )
            )
        loops.append(
            Loop(
                model=workflow.model or rng.choice(agent.models),
                tokens_in=tokens_in,
                tokens_out=rng.randint(*workflow.tokens_out),
                think_s=round(rng.uniform(*workflow.think_s), 3),
                steps=tuple(steps),
            )
        )
    return tuple(loops)


# -- scripted trouble ----------------------------------------------------------------------
def _trouble(agent: Agent, trouble: Trouble, rng: random.Random, at: float) -> PlanItem:
    if trouble.kind == "agent_outage":
        return OutagePlan(at_s=round(at, 3), agent=agent.name, down_s=trouble.down_s)
    assert trouble.workflow is not None  # validated by the scenario loader
    workflow = next(w for w in agent.workflows if w.name == trouble.workflow)
    principal = trouble.principal or rng.choice(agent.principals)
    model = trouble.model or workflow.model or agent.models[0]
    builders = {
        "runaway_loop": _runaway,
        "low_confidence_retrieval": _low_confidence,
        "privilege_escalation": _calls,
        "cross_tenant_export": _calls,
        "budget_exhaustion": _budget,
    }
    loops = builders[trouble.kind](agent, workflow, trouble, model, rng)
    return SessionPlan(
        at_s=round(at, 3),
        agent=agent.name,
        workflow=workflow.name,
        principal=principal,
        session_id=_session_id(rng),
        kind=trouble.kind,
        loops=loops,
        approved_change=False,
    )


def _runaway(
    agent: Agent, workflow: Workflow, trouble: Trouble, model: str, rng: random.Random
) -> tuple[Loop, ...]:
    """The same step after every timeout, no person in between."""
    assert trouble.tool is not None
    step = Step(trouble.tool, dict(trouble.arguments), trouble.step_s, fails=TIMEOUT_ERROR)
    tokens_in = rng.randint(*workflow.tokens_in)
    return tuple(
        Loop(model, tokens_in + 40 * i, 60, round(trouble.step_s / 2, 3), (step,), human=i == 0)
        for i in range(trouble.attempts)
    )


def _low_confidence(
    agent: Agent, workflow: Workflow, trouble: Trouble, model: str, rng: random.Random
) -> tuple[Loop, ...]:
    """Unsure answers and a context that keeps widening, to `inflation` times its size."""
    tool = trouble.tool or workflow.steps[0]
    base = rng.randint(3000, 4000)
    growth = (1.0, 1.0 + (trouble.inflation - 1) * 0.45, trouble.inflation)
    confidence = (0.44, 0.31, 0.22)
    loops = []
    for i, (factor, conf) in enumerate(zip(growth, confidence, strict=True)):
        context = round(base * factor)
        arguments = dict(trouble.arguments)
        if arguments:
            key = next(iter(arguments))
            arguments[key] = f"{arguments[key]} (widened x{i + 1})" if i else arguments[key]
        step = Step(tool, arguments, trouble.step_s, confidence=conf, context_tokens=context)
        loops.append(Loop(model, context, rng.randint(200, 400), trouble.step_s, (step,), i == 0))
    return tuple(loops)


def _calls(
    agent: Agent, workflow: Workflow, trouble: Trouble, model: str, rng: random.Random
) -> tuple[Loop, ...]:
    return tuple(
        Loop(
            model,
            rng.randint(*workflow.tokens_in),
            rng.randint(*workflow.tokens_out),
            trouble.step_s,
            (Step(call.tool, dict(call.arguments), trouble.step_s),),
        )
        for call in trouble.calls
    )


def _budget(
    agent: Agent, workflow: Workflow, trouble: Trouble, model: str, rng: random.Random
) -> tuple[Loop, ...]:
    """Long prompts on an expensive model, each loop a new question (no retries)."""
    tool = next(t for t in agent.tools if t.name == workflow.steps[0])
    example = tool.examples[0] if tool.examples else {}
    loops = []
    for i in range(trouble.loops):
        arguments = _vary(_fill(example, trouble.principal or "", agent.tenant), i)
        retrieval = tool.category == "retrieval"
        step = Step(
            tool.name,
            arguments,
            trouble.step_s,
            confidence=round(rng.uniform(*tool.confidence), 3) if retrieval else None,
            context_tokens=trouble.tokens_in if retrieval else None,
        )
        loops.append(Loop(model, trouble.tokens_in, trouble.tokens_out, trouble.step_s, (step,)))
    return tuple(loops)


# -- helpers -------------------------------------------------------------------------------
def _session_id(rng: random.Random) -> str:
    return f"{rng.getrandbits(64):016x}"


def _fill(example: dict[str, Any], principal: str, tenant: str) -> dict[str, Any]:
    def one(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace("{principal}", principal).replace("{tenant}", tenant)
        return value

    return {key: one(value) for key, value in example.items()}


def _vary(arguments: dict[str, Any], n: int) -> dict[str, Any]:
    """Make the n-th call's arguments distinct, so it is a new step and not a retry."""
    out = dict(arguments)
    for key, value in out.items():
        if isinstance(value, str):
            out[key] = f"{value} (part {n + 1})"
            return out
    out["part"] = n + 1
    return out
