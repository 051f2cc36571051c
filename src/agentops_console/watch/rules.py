"""Automatic responses the team wrote down: `[[rule]]` tables of watch.toml.

A rule is `when` (conditions, all must hold) and `then` (one action). Every matching
rule fires, each at most once per target: per (rule, agent, session) for a kill or a
session budget, per (rule, agent, workflow) for a disable or a workflow budget, per
(rule, agent) for an agent budget. A rule only produces a typed action; `respond`
carries it out (or, in a dry run, only reports it). No rule, no action.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from ..protocol.models import BUDGET_FIELDS, FLAG_KINDS, USD, BudgetUpdate, Count, Event, Severity
from ..protocol.scope import Scope, ScopeError, parse_scope

RuleName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]
Names = Annotated[list[Annotated[str, Field(min_length=1, max_length=200)]], Field(min_length=1)]
FLAG_SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
ACTIONS = ("kill", "disable_workflow")
_LIVE = ("running", "waiting_approval")
#: Discriminator tags: `config` leaves them out of error locations.
THEN_TAGS = ("action", "table")


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class When(_Strict):
    """Conditions, all of which must hold. `agent` and `workflow` only narrow: a rule
    needs `flag`, `severity` or `cost_usd_gt` to fire at all."""

    agent: Names | None = None
    workflow: Names | None = None
    flag: Names | None = None
    severity: Severity | None = None  # the flag's severity at least this
    cost_usd_gt: USD | None = None  # the session's cost so far

    _lists = field_validator("agent", "workflow", "flag", mode="before")(_as_list)

    @field_validator("flag")
    @classmethod
    def _known_flags(cls, value: list[str] | None) -> list[str] | None:
        for kind in value or ():
            if kind not in FLAG_KINDS:
                raise ValueError(f"unknown flag kind {kind!r}; known: {', '.join(FLAG_KINDS)}")
        return value

    @model_validator(mode="after")
    def _has_trigger(self) -> When:
        if self.flag is None and self.severity is None and self.cost_usd_gt is None:
            raise ValueError("needs flag, severity or cost_usd_gt (agent and workflow only narrow)")
        return self

    @property
    def on_flags(self) -> bool:
        return self.flag is not None or self.severity is not None


class BudgetLimits(_Strict):
    """The protocol's budget fields (PUT /v1/budgets) for one scope of the session's agent."""

    scope: Literal["session", "workflow", "agent"]
    max_cost_usd_session: USD | None = None
    max_cost_usd_loop: USD | None = None
    max_tool_calls: Count | None = None
    max_consecutive_tool_calls: Count | None = None
    max_output_tokens: Count | None = None

    @model_validator(mode="after")
    def _some_limit(self) -> BudgetLimits:
        if not self.limits():
            raise ValueError(f"needs at least one of {', '.join(BUDGET_FIELDS)}")
        return self

    def limits(self) -> dict[str, float | int]:
        return {k: v for k in BUDGET_FIELDS if (v := getattr(self, k)) is not None}


class BudgetThen(_Strict):
    budget: BudgetLimits


def _then_tag(value: Any) -> str:
    return "table" if isinstance(value, dict | BudgetThen) else "action"


Then = Annotated[
    Annotated[Literal["kill", "disable_workflow"], Tag("action")]
    | Annotated[BudgetThen, Tag("table")],
    Discriminator(_then_tag),
]


class Rule(_Strict):
    name: RuleName
    when: When
    then: Then
    reason: Annotated[str, Field(min_length=1, max_length=500)] | None = None

    @field_validator("then", mode="before")
    @classmethod
    def _known_action(cls, value: Any) -> Any:
        usage = 'use "kill", "disable_workflow" or { budget = { scope = ..., <limit> = ... } }'
        if isinstance(value, str) and value not in ACTIONS:
            raise ValueError(f"unknown action {value!r}; {usage}")
        if isinstance(value, dict) and set(value) != {"budget"}:
            keys = ", ".join(repr(k) for k in value if k != "budget") or "an empty table"
            raise ValueError(f"unknown action {keys}; {usage}")
        if not isinstance(value, str | dict | BudgetThen):
            raise ValueError(usage)
        return value

    @property
    def operator(self) -> str:
        """Who the agent and the audit log see acting."""
        return f"watch:{self.name}"

    def match(self, agent: str, event: Event) -> str | None:
        """Why this event sets the rule off (a one-line cause), or None."""
        when = self.when
        session = event.session
        if when.agent is not None and agent not in when.agent:
            return None
        workflow = event.workflow or (session.workflow if session else None)
        if when.workflow is not None and workflow not in when.workflow:
            return None
        causes: list[str] = []
        if when.on_flags:
            flag = event.flag
            if event.type != "flag" or flag is None:
                return None
            if when.flag is not None and flag.kind not in when.flag:
                return None
            rank = FLAG_SEVERITY_RANK[flag.severity]
            if when.severity is not None and rank < FLAG_SEVERITY_RANK[when.severity]:
                return None
            causes.append(f"flag {flag.kind} ({flag.severity}): {flag.message}")
        if when.cost_usd_gt is not None:
            if session is None or not session.cost_usd > when.cost_usd_gt:
                return None
            causes.append(f"cost ${session.cost_usd:.4f} > ${when.cost_usd_gt:g}")
        return "; ".join(causes)[:400]


@dataclass(frozen=True, slots=True)
class _Action:
    """What a rule decided; `respond.Executor` carries it out and audits it."""

    rule: str
    agent: str
    reason: str
    cause: str
    event_seq: int

    audit_action: ClassVar[str] = ""

    @property
    def operator(self) -> str:
        return f"watch:{self.rule}"

    @property
    def target(self) -> str:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class KillSession(_Action):
    session_id: str

    audit_action: ClassVar[str] = "session.kill"

    @property
    def target(self) -> str:
        return f"{self.agent}/session/{self.session_id}"

    def describe(self) -> str:
        return f"kill session {self.session_id} on {self.agent}"


@dataclass(frozen=True, slots=True)
class DisableWorkflow(_Action):
    workflow: str

    audit_action: ClassVar[str] = "workflow.disable"

    @property
    def target(self) -> str:
        return f"{self.agent}/workflow/{self.workflow}"

    def describe(self) -> str:
        return f"disable workflow {self.workflow} on {self.agent}"


@dataclass(frozen=True, slots=True)
class SetBudget(_Action):
    update: BudgetUpdate

    audit_action: ClassVar[str] = "budget.set"

    @property
    def target(self) -> str:
        scope = parse_scope(self.update.scope)
        return f"{self.agent}/{scope.kind}/{scope.name}" if scope.name else self.agent

    def describe(self) -> str:
        limits = ", ".join(f"{k}={v}" for k, v in self.update.changes().items())
        return f"set budget {self.update.scope} on {self.agent}: {limits}"


Action = KillSession | DisableWorkflow | SetBudget


def _action(rule: Rule, agent: str, event: Event, cause: str) -> tuple[Action, str] | None:
    """The action and its dedup target, or None when the event lacks what it needs (a
    session-wide action on a session that already ended, a disable without a workflow)."""
    session = event.session
    session_id = event.session_id or (session.id if session else None)
    workflow = event.workflow or (session.workflow if session else None)
    live = session is None or session.status in _LIVE
    reason = (rule.reason or f"watch rule {rule.name}: {cause}")[:2000]
    common = {"rule": rule.name, "agent": agent, "reason": reason, "cause": cause}
    seq = event.seq
    if rule.then == "kill":
        if session_id is None or not live:
            return None
        return KillSession(**common, event_seq=seq, session_id=session_id), f"session:{session_id}"
    if rule.then == "disable_workflow":
        if workflow is None:
            return None
        return DisableWorkflow(**common, event_seq=seq, workflow=workflow), f"workflow:{workflow}"
    limits = rule.then.budget
    if limits.scope == "session":
        if session_id is None or not live:
            return None
        name = session_id
    elif limits.scope == "workflow":
        if workflow is None:
            return None
        name = workflow
    else:
        name = ""
    try:
        scope = str(Scope(limits.scope, name))
    except ScopeError:  # an id the agent sent that no budget scope can name
        return None
    body = {"scope": scope, "operator": rule.operator, "reason": reason, **limits.limits()}
    update = BudgetUpdate.model_validate(body)
    return SetBudget(**common, event_seq=seq, update=update), scope


class RuleBook:
    """The rules in file order, and which targets each has already acted on."""

    def __init__(self, rules: Iterable[Rule], remember: int = 100_000) -> None:
        self.rules: Sequence[Rule] = tuple(rules)
        self._fired: OrderedDict[tuple[str, str, str], None] = OrderedDict()
        self._remember = remember

    def __len__(self) -> int:
        return len(self.rules)

    def actions_for(self, agent: str, event: Event) -> list[Action]:
        """New actions this event calls for; each (rule, agent, target) only once."""
        actions: list[Action] = []
        for rule in self.rules:
            cause = rule.match(agent, event)
            if cause is None:
                continue
            found = _action(rule, agent, event, cause)
            if found is None:
                continue
            action, target = found
            key = (rule.name, agent, target)
            if key in self._fired:
                continue
            self._fired[key] = None
            if len(self._fired) > self._remember:
                self._fired.popitem(last=False)
            actions.append(action)
        return actions
