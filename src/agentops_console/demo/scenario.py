"""Scenario files: the fleet, its ordinary traffic and its scripted trouble, as TOML data.

A scenario is data so that a newcomer (or a test) can change the story without touching
code. Every mistake in a file is reported as `path:line: where: what`, because the person
editing it needs to know which line to fix, not which pydantic model refused it.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

#: Repository fixtures (the demo runs from a clone; `make demo` installs it editable).
FIXTURES = Path(__file__).resolve().parents[3] / "fixtures"
SCENARIOS = FIXTURES / "scenarios"
DEFAULT_SCENARIO = SCENARIOS / "it-support-story.toml"

TroubleKind = Literal[
    "runaway_loop",
    "low_confidence_retrieval",
    "privilege_escalation",
    "cross_tenant_export",
    "budget_exhaustion",
    "agent_outage",
]
TROUBLE_KINDS: tuple[str, ...] = TroubleKind.__args__  # type: ignore[attr-defined]

Name = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.\-]+$")]
Range = Annotated[tuple[float, float], Field(description="[low, high]")]
IntRange = Annotated[tuple[int, int], Field(description="[low, high]")]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message is one line with file and line."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _ordered(value: tuple[float, float], what: str) -> None:
    if value[0] > value[1] or value[0] < 0:
        raise ValueError(f"{what} must be [low, high] with 0 <= low <= high")


class Tool(_Strict):
    name: Name
    version: str | None = None
    category: str = "general"
    read_only: bool = False
    customer_facing: bool = False
    corpus: str | None = None
    region: str | None = None
    args: dict[str, Literal["str", "int", "float", "bool", "list", "dict", "any"]] | None = None
    required: tuple[str, ...] = ()
    #: How long the tool takes, in scenario seconds.
    latency_s: Range = (0.05, 0.3)
    #: Retrieval tools: the confidence of an ordinary answer.
    confidence: Range = (0.7, 0.95)
    #: Arguments ordinary traffic picks from; "{principal}" and "{tenant}" are filled in.
    examples: tuple[dict[str, Any], ...] = ()

    @model_validator(mode="after")
    def _check(self) -> Tool:
        _ordered(self.latency_s, "latency_s")
        _ordered(self.confidence, "confidence")
        if self.confidence[1] > 1:
            raise ValueError("confidence must be within [0, 1]")
        return self


class Workflow(_Strict):
    name: Name
    weight: Positive = 1.0
    #: Tool calls of one loop, in order; each loop is preceded by one LLM call.
    steps: tuple[Name, ...] = Field(min_length=1)
    loops: IntRange = (1, 2)
    model: str | None = None
    tokens_in: IntRange = (600, 2000)
    tokens_out: IntRange = (100, 500)
    #: Sessions of this workflow run with a change ticket approved (`approved_change`).
    approved_change: bool = False
    #: Scenario seconds the model "thinks" before answering.
    think_s: Range = (0.2, 0.8)

    @model_validator(mode="after")
    def _check(self) -> Workflow:
        _ordered(self.loops, "loops")
        _ordered(self.tokens_in, "tokens_in")
        _ordered(self.tokens_out, "tokens_out")
        _ordered(self.think_s, "think_s")
        if self.loops[0] < 1:
            raise ValueError("loops must be at least 1")
        return self


class Agent(_Strict):
    name: Name
    version: str = "1.0.0"
    #: The release before this one (seeded in the governance DB as the rollback target).
    previous_version: str | None = None
    risk: Literal["high", "medium", "low"] = "medium"
    tenant: Name
    #: Cedar policy file, relative to the fixtures directory (or absolute).
    policy: str = "policies/it-support.cedar"
    models: tuple[str, ...] = Field(min_length=1)
    #: New ordinary sessions per scenario minute (Poisson arrivals).
    sessions_per_minute: Positive = 6.0
    #: Ordinary sessions running at once; arrivals beyond are dropped (as a busy agent would).
    max_concurrent: int = Field(default=6, ge=1, le=100)
    principals: tuple[Name, ...] = Field(min_length=1)
    tools: tuple[Tool, ...] = Field(min_length=1)
    workflows: tuple[Workflow, ...] = Field(min_length=1)


class Tenant(_Strict):
    name: Name
    region: str = "eu-west-1"


class Call(_Strict):
    tool: Name
    arguments: dict[str, Any] = Field(default_factory=dict)


class Trouble(_Strict):
    """One scripted incident. Fields a kind does not use are ignored by it."""

    kind: TroubleKind
    at_s: NonNegative
    agent: Name
    workflow: Name | None = None
    principal: Name | None = None
    tool: Name | None = None
    arguments: dict[str, Any] = Field(default_factory=dict)
    #: privilege_escalation, cross_tenant_export: the calls the agent attempts, in order.
    calls: tuple[Call, ...] = ()
    model: str | None = None
    #: runaway_loop: how many times the agent retries before giving up by itself.
    attempts: int = Field(default=12, ge=1, le=1000)
    #: low_confidence_retrieval: how much the context grows by the last retrieval.
    inflation: float = Field(default=2.3, gt=1, le=100)
    #: budget_exhaustion: loops and tokens per loop.
    loops: int = Field(default=20, ge=1, le=1000)
    tokens_in: int = Field(default=40_000, ge=0)
    tokens_out: int = Field(default=1_500, ge=0)
    #: agent_outage: scenario seconds the endpoint stays down; absent = it stays down.
    down_s: Positive | None = None
    #: Scenario seconds between two steps of the trouble session.
    step_s: NonNegative = 0.4

    @model_validator(mode="after")
    def _check(self) -> Trouble:
        if self.kind != "agent_outage" and self.workflow is None:
            raise ValueError(f"{self.kind} needs a workflow")
        if self.kind == "runaway_loop" and self.tool is None:
            raise ValueError("runaway_loop needs a tool")
        if self.kind in ("cross_tenant_export", "privilege_escalation") and not self.calls:
            raise ValueError(f"{self.kind} needs calls")
        return self


Role = Literal["product", "security", "platform", "applied-ai", "operations"]


def _default_owners() -> dict[Role, str]:
    return {
        "product": "maya.product",
        "security": "sam.security",
        "platform": "pat.platform",
        "applied-ai": "ada.appliedai",
        "operations": "otto.ops",
    }


class Governance(_Strict):
    """Who owns the demo agents and who wrote their releases (seeded in the DB)."""

    author: Name = "dev.alex"
    owners: dict[Role, Name] = Field(default_factory=_default_owners)


class Meta(_Strict):
    name: Name
    description: str = ""
    #: The scripted trouble repeats every cycle (interactive demo); scenario seconds.
    cycle_s: Positive = 120.0
    #: Scenario seconds a human checkpoint waits before it is denied.
    approval_timeout_s: Positive = 60.0
    #: Seed used when the command line gives none.
    seed: int = 7


class ScenarioModel(_Strict):
    scenario: Meta
    governance: Governance = Field(default_factory=Governance)
    tenants: tuple[Tenant, ...] = ()
    agents: tuple[Agent, ...] = Field(min_length=1)
    trouble: tuple[Trouble, ...] = ()


@dataclass(frozen=True)
class Scenario:
    """A validated scenario and where it came from."""

    path: Path
    model: ScenarioModel

    @property
    def name(self) -> str:
        return self.model.scenario.name

    @property
    def agents(self) -> tuple[Agent, ...]:
        return self.model.agents

    @property
    def trouble(self) -> tuple[Trouble, ...]:
        return self.model.trouble

    def agent(self, name: str) -> Agent:
        for agent in self.model.agents:
            if agent.name == name:
                return agent
        raise KeyError(name)

    def policy_text(self, agent: Agent) -> str:
        return _policy_path(self.path, agent.policy).read_text(encoding="utf-8")


def _policy_path(scenario_path: Path, policy: str) -> Path:
    path = Path(policy)
    if path.is_absolute():
        return path
    for base in (scenario_path.parent.parent, scenario_path.parent, FIXTURES):
        if (base / path).is_file():
            return base / path
    return scenario_path.parent.parent / path


def load_scenario(path: str | Path | None = None) -> Scenario:
    """Read and validate a scenario; ScenarioError (one line, with file:line) when it is bad."""
    path = Path(path) if path is not None else DEFAULT_SCENARIO
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read scenario: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"line (\d+)", str(exc))
        where = f"{path}:{line.group(1)}" if line else str(path)
        raise ScenarioError(f"{where}: invalid TOML: {exc}") from None
    lines = _KeyLines(text)
    try:
        model = ScenarioModel.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = tuple(error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        raise ScenarioError(f"{path}:{lines.find(loc)}: {_dotted(loc)}: {message}") from None
    problem = _cross_check(model, path)
    if problem is not None:
        loc, message = problem
        raise ScenarioError(f"{path}:{lines.find(loc)}: {_dotted(loc)}: {message}")
    return Scenario(path=path, model=model)


def _cross_check(model: ScenarioModel, path: Path) -> tuple[tuple[Any, ...], str] | None:
    """References between sections: names unique, steps name tools, trouble names agents."""
    agents: dict[str, Agent] = {}
    tenants = {t.name for t in model.tenants}
    for i, agent in enumerate(model.agents):
        here: tuple[Any, ...] = ("agents", i)
        if agent.name in agents:
            return (*here, "name"), f"agent {agent.name!r} is defined twice"
        agents[agent.name] = agent
        if tenants and agent.tenant not in tenants:
            return (*here, "tenant"), f"unknown tenant {agent.tenant!r}"
        if not _policy_path(path, agent.policy).is_file():
            return (*here, "policy"), f"policy file {agent.policy!r} not found"
        tools = {t.name for t in agent.tools}
        if len(tools) != len(agent.tools):
            return (*here, "tools"), "tool names must be unique"
        for j, tool in enumerate(agent.tools):
            for k, arg in enumerate(tool.required):
                if tool.args is not None and arg not in tool.args:
                    return (*here, "tools", j, "required", k), f"{arg!r} is not in args"
        for j, workflow in enumerate(agent.workflows):
            for k, step in enumerate(workflow.steps):
                if step not in tools:
                    return (*here, "workflows", j, "steps", k), f"unknown tool {step!r}"
    for i, trouble in enumerate(model.trouble):
        here = ("trouble", i)
        agent_def = agents.get(trouble.agent)
        if agent_def is None:
            return (*here, "agent"), f"unknown agent {trouble.agent!r}"
        names = {t.name for t in agent_def.tools}
        if trouble.tool is not None and trouble.tool not in names:
            return (*here, "tool"), f"agent {trouble.agent} has no tool {trouble.tool!r}"
        for j, call in enumerate(trouble.calls):
            if call.tool not in names:
                return (
                    *here,
                    "calls",
                    j,
                    "tool",
                ), f"agent {trouble.agent} has no tool {call.tool!r}"
        workflows = {w.name for w in agent_def.workflows}
        if trouble.workflow is not None and trouble.workflow not in workflows:
            return (
                *here,
                "workflow",
            ), f"agent {trouble.agent} has no workflow {trouble.workflow!r}"
        if trouble.at_s >= model.scenario.cycle_s:
            return (
                *here,
                "at_s",
            ), f"must be before the end of the cycle ({model.scenario.cycle_s})"
    return None


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "scenario"


_ARRAY = re.compile(r"^\[\[\s*([A-Za-z0-9_.\-]+)\s*\]\]")
_TABLE = re.compile(r"^\[\s*([A-Za-z0-9_.\-]+)\s*\]")
_KEY = re.compile(r"^([A-Za-z0-9_\-]+)\s*=")


class _KeyLines:
    """Line numbers of tables and keys, so a validation error can point into the file.

    tomllib keeps no positions; this scanner understands the subset scenario files use
    (tables, arrays of tables, `key =` lines), which is enough to name the line to fix.
    """

    def __init__(self, text: str) -> None:
        self.lines: dict[tuple[Any, ...], int] = {}
        counters: dict[tuple[Any, ...], int] = {}
        resolved: dict[str, tuple[Any, ...]] = {}
        current: tuple[Any, ...] = ()
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if match := _ARRAY.match(line):
                parts = match.group(1).split(".")
                key = (*self._resolve(resolved, parts[:-1]), parts[-1])
                index = counters.get(key, 0)
                counters[key] = index + 1
                current = (*key, index)
                resolved[match.group(1)] = current
            elif match := _TABLE.match(line):
                parts = match.group(1).split(".")
                current = self._resolve(resolved, parts)
                resolved[match.group(1)] = current
            elif match := _KEY.match(line):
                self.lines.setdefault((*current, match.group(1)), number)
                continue
            else:
                continue
            self.lines.setdefault(current, number)

    @staticmethod
    def _resolve(resolved: dict[str, tuple[Any, ...]], parts: list[str]) -> tuple[Any, ...]:
        for cut in range(len(parts), 0, -1):
            prefix = ".".join(parts[:cut])
            if prefix in resolved:
                return (*resolved[prefix], *parts[cut:])
        return tuple(parts)

    def find(self, loc: tuple[Any, ...]) -> int:
        for cut in range(len(loc), 0, -1):
            line = self.lines.get(tuple(loc[:cut]))
            if line is not None:
                return line
        return 1


__all__ = [
    "DEFAULT_SCENARIO",
    "TROUBLE_KINDS",
    "Agent",
    "Scenario",
    "ScenarioError",
    "Tool",
    "Trouble",
    "Workflow",
    "load_scenario",
]
