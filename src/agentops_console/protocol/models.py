"""The agentops/1 wire contract, shared by the runtime, the console and the CLI.

These models are the only thing the agent side and the operator side share, so the
console can talk to any agent that speaks the protocol, whatever runtime version it runs.
Times are timezone-aware UTC datetimes; money is USD as float on the wire (Cedar sees
micro-USD integers, see the runtime's policy module).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator

from .scope import parse_scope

PROTOCOL_VERSION = "agentops/1"

#: Largest request body the endpoint accepts (413 beyond), OTLP batches included.
MAX_BODY_BYTES = 4 * 1024 * 1024
#: Deepest JSON nesting a request body may have (400 beyond): no real body nests past ~10,
#: and the limit keeps hostile input away from any parser's recursion limit.
MAX_JSON_DEPTH = 64

#: GET /v1/sessions pages: `limit` defaults to and is capped at these.
SESSIONS_PAGE_DEFAULT = 500
SESSIONS_PAGE_MAX = 5_000
#: Response header carrying the opaque cursor of the next page (absent on the last page).
NEXT_CURSOR_HEADER = "X-Next-Cursor"
#: GET /v1/session-details: ids per request at most, and the body size after which the
#: rest of the asked ids are left for the next request (`more`); one session always fits.
SESSION_DETAILS_MAX = 500
SESSION_DETAILS_MAX_BYTES = 8 * 1024 * 1024

SessionStatus = Literal["running", "waiting_approval", "completed", "failed", "killed", "stopped"]
SpanKind = Literal["agent", "llm", "tool", "retrieval"]
#: How a session ended for its task: reported by the agent (`s.outcome(...)`, or the
#: `agentops.outcome` OTel attribute), else derived when it ends (see docs/runtime.md).
Outcome = Literal["resolved", "partial", "escalated", "refused", "unsafe", "failed", "unknown"]
OUTCOMES: tuple[str, ...] = Outcome.__args__  # type: ignore[attr-defined]
SpanOutcome = Literal["running", "ok", "error", "denied", "killed", "budget_exceeded", "timeout"]
Decision = Literal["allow", "deny", "approval_required", "approved", "rejected", "expired"]
FlagKind = Literal[
    "runaway_loop",  # the same step (tool + arguments) retried more than 3 times
    "consecutive_tool_calls",  # consecutive tool calls without a human over the limit
    "budget_warning",  # a budget reached 80 %
    "budget_exceeded",  # a hard budget limit hit; the session stops
    "policy_denied",  # Cedar denied a tool call (unauthorized attempt)
    "policy_near_miss",  # arguments outside the tool's declared schema
    "low_confidence_retrieval",  # retrieval below threshold that keeps expanding context
    "approval_required",  # a human checkpoint is pending
    "approval_timeout",  # a checkpoint expired unanswered (denied)
    "unpriced",  # a model genai-prices cannot price; its cost counts as 0
    "killed",  # an operator killed the session
    "workflow_disabled",  # the session's workflow was disabled
]
FLAG_KINDS: tuple[str, ...] = FlagKind.__args__  # type: ignore[attr-defined]
Severity = Literal["info", "warning", "critical"]
EventType = Literal[
    "session_started",
    "session_updated",
    "session_ended",
    "span_started",
    "span_ended",
    "flag",
    "session_killed",
    "workflow_disabled",
    "workflow_enabled",
    "budgets_changed",
    "approval_requested",
    "approval_resolved",
    "policy_changed",
    "sessions_evicted",
    # the stream skipped events (a reader too far behind, or a resume older than the ring):
    # refetch a snapshot and resume from its last_event_seq; the server closes the stream
    "gap",
]

#: Upper bounds that reject absurd budgets with a 400 instead of silently accepting them.
MAX_BUDGET_USD = 1_000_000.0
MAX_BUDGET_COUNT = 10_000_000


class Model(BaseModel):
    """Base for wire models: unknown fields are ignored so newer peers stay readable."""

    model_config = ConfigDict(extra="ignore", frozen=False)


class StrictModel(BaseModel):
    """Base for request bodies: unknown fields are an error, so typos do not pass silently,
    and on the wire types are strict (`true` is not 1, `"1"` is not a number): a control
    action must mean exactly what its sender wrote."""

    model_config = ConfigDict(extra="forbid")

    @classmethod
    def from_wire(cls, body: bytes) -> Self:
        """Parse a request body in strict mode (ValidationError when it does not fit).

        Strict here rather than in model_config, so Python callers building a request
        keep pydantic's usual typed constructor."""
        return cls.model_validate_json(body, strict=True)


USD = Annotated[float, Field(ge=0, le=MAX_BUDGET_USD, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0, le=MAX_BUDGET_COUNT)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Text = Annotated[str, Field(max_length=2000)]


class Health(Model):
    status: Literal["ok"] = "ok"
    protocol: str = PROTOCOL_VERSION
    agent: str


class Budgets(Model):
    """Limits; None means "not limited at this scope" (inherit from the wider scope)."""

    max_cost_usd_session: USD | None = None
    max_cost_usd_loop: USD | None = None
    max_tool_calls: Count | None = None
    max_consecutive_tool_calls: Count | None = None
    max_output_tokens: Count | None = None

    def merged_over(self, wider: Budgets) -> Budgets:
        """This scope's values where set, else the wider scope's."""
        data = wider.model_dump()
        data.update({k: v for k, v in self.model_dump().items() if v is not None})
        return Budgets(**data)


BUDGET_FIELDS: tuple[str, ...] = tuple(Budgets.model_fields)


class BudgetUpdate(StrictModel):
    """Body of PUT /v1/budgets. Fields left out keep their value; null clears the scope's limit."""

    scope: str = "agent"
    max_cost_usd_session: USD | None = None
    max_cost_usd_loop: USD | None = None
    max_tool_calls: Count | None = None
    max_consecutive_tool_calls: Count | None = None
    max_output_tokens: Count | None = None
    operator: Name = "unknown"
    reason: Text = ""

    @field_validator("scope")
    @classmethod
    def _scope(cls, value: str) -> str:
        parse_scope(value)  # ScopeError, a ValueError: the same sentence as every caller
        return value

    def changes(self) -> dict[str, float | int | None]:
        """Only the budget fields the caller actually sent."""
        return {k: getattr(self, k) for k in BUDGET_FIELDS if k in self.model_fields_set}


class BudgetState(Model):
    scope: str
    budgets: Budgets
    effective: Budgets | None = None


class ControlRequest(StrictModel):
    """Body of kill / disable / enable: who asked and why (recorded on the event stream)."""

    operator: Name
    reason: Text = ""


class WorkflowState(Model):
    workflow: str
    disabled: bool
    operator: str | None = None
    reason: str | None = None
    at: datetime | None = None
    sessions_stopped: int = 0


class PolicyBundle(StrictModel):
    """Body of PUT /v1/policy. The sha256 guards against a bundle mangled in transit."""

    version: Name
    cedar: Annotated[str, Field(max_length=MAX_BODY_BYTES)]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    operator: Name = "unknown"

    @model_validator(mode="after")
    def _digest_matches(self) -> PolicyBundle:
        if policy_sha256(self.cedar) != self.sha256:
            raise ValueError("sha256 does not match the Cedar text")
        return self


def policy_sha256(cedar: str) -> str:
    return hashlib.sha256(cedar.encode("utf-8")).hexdigest()


class PolicyState(Model):
    version: str | None
    sha256: str | None
    loaded_at: datetime | None
    policies: int = 0
    budgets: Budgets = Field(default_factory=Budgets)


class AgentInfo(Model):
    protocol: str = PROTOCOL_VERSION
    agent: str
    version: str
    tenant: str | None = None
    workflows: list[str] = Field(default_factory=list)
    disabled_workflows: list[WorkflowState] = Field(default_factory=list)
    policy: PolicyState
    budgets: Budgets
    workflow_budgets: dict[str, Budgets] = Field(default_factory=dict)
    started_at: datetime
    sessions_active: int = 0
    sessions_total: int = 0
    sessions_evicted: int = 0
    cost_usd_total: float = 0.0
    #: The event sequence number when this answer was built: a client that fetched this
    #: snapshot resumes the stream with `Last-Event-ID: <last_event_seq>` and misses nothing.
    last_event_seq: int = 0


#: Flags a session keeps (the newest): on a summary, and in a record of several runs.
FLAGS_KEPT = 50


class Flag(Model):
    kind: FlagKind
    severity: Severity = "warning"
    at: datetime
    message: str
    span_id: str | None = None


class KillInfo(Model):
    operator: str
    reason: str
    at: datetime


class SessionSummary(Model):
    id: str
    agent: str
    workflow: str
    principal: str
    tenant: str | None = None
    status: SessionStatus
    started_at: datetime
    last_event_at: datetime
    ended_at: datetime | None = None
    loops: int = 0
    tool_calls: int = 0
    consecutive_tool_calls: int = 0
    retries: int = 0
    unauthorized_attempts: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    loop_cost_usd: float = 0.0
    budget: Budgets = Field(default_factory=Budgets)
    flags: list[Flag] = Field(default_factory=list)
    killed: KillInfo | None = None
    source: Literal["api", "otel"] = "api"
    #: None while running and unreported; always set once the session has ended.
    outcome: Outcome | None = None


class PolicyDecision(Model):
    decision: Decision
    reasons: list[str] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)
    policy_version: str | None = None
    approval_id: str | None = None
    evaluated_us: float | None = None


class CostSplit(Model):
    """USD of a call (or a session) by what the provider bills; the parts add up to its
    cost: input not served from or written to a cache, cache reads, cache writes, output
    other than reasoning, reasoning, and a per-request fee where a provider charges one."""

    input: float = 0.0
    cache_read: float = 0.0
    cache_write: float = 0.0
    output: float = 0.0
    reasoning: float = 0.0
    request: float = 0.0


class Span(Model):
    id: str
    session_id: str
    parent_id: str | None = None
    kind: SpanKind
    name: str
    loop: int = 0
    started_at: datetime
    ended_at: datetime | None = None
    latency_ms: float | None = None
    outcome: SpanOutcome = "running"
    error: str | None = None
    principal: str | None = None
    tool: str | None = None
    tool_version: str | None = None
    arguments: JsonValue = None
    output: JsonValue = None
    policy: PolicyDecision | None = None
    model: str | None = None
    provider: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    #: Parts of tokens_in (cache reads, cache writes) and of tokens_out (reasoning).
    tokens_cache_read: int = 0
    tokens_cache_write: int = 0
    tokens_reasoning: int = 0
    cost_usd: float = 0.0
    cost_split: CostSplit | None = None
    unpriced: bool = False
    confidence: float | None = None
    attributes: dict[str, JsonValue] = Field(default_factory=dict)


class LoopCost(Model):
    loop: int
    cost_usd: float
    tokens_in: int
    tokens_out: int
    tool_calls: int


class SessionDetail(SessionSummary):
    spans: list[Span] = Field(default_factory=list)
    loop_costs: list[LoopCost] = Field(default_factory=list)
    outcome_reason: str | None = None
    #: Sums over the session's LLM calls: parts of tokens_in / tokens_out, cost by part.
    tokens_cache_read: int = 0
    tokens_cache_write: int = 0
    tokens_reasoning: int = 0
    cost_split: CostSplit | None = None
    #: The task and the final answer, when the agent reports them (after retention rules).
    input: str | None = None
    output: str | None = None
    #: The OpenTelemetry trace: OTel sessions, and API sessions exported over OTel.
    trace_id: str | None = None


ApprovalStatus = Literal["pending", "approved", "denied", "expired"]


class Approval(Model):
    id: str
    session_id: str
    workflow: str
    principal: str
    tool: str
    arguments: JsonValue = None
    reason: str
    requested_at: datetime
    expires_at: datetime
    status: ApprovalStatus = "pending"
    decided_by: str | None = None
    decision_reason: str | None = None
    decided_at: datetime | None = None


class ApprovalDecision(StrictModel):
    decision: Literal["approve", "deny"]
    operator: Name
    reason: Text = ""


class Event(Model):
    """One entry of GET /v1/events. `seq` is the SSE `id:` and increases monotonically.

    Events about a session carry the session's summary after the change, so a consumer
    can upsert its row by key without another request.
    """

    seq: int
    type: EventType
    at: datetime
    session_id: str | None = None
    workflow: str | None = None
    operator: str | None = None
    reason: str | None = None
    session: SessionSummary | None = None
    span: Span | None = None
    flag: Flag | None = None
    approval: Approval | None = None
    workflow_state: WorkflowState | None = None
    budgets: BudgetState | None = None
    policy: PolicyState | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    #: On a `gap` event only: the first and last sequence numbers this client will not get.
    gap_from: int | None = None
    gap_to: int | None = None


class SessionDetails(Model):
    """GET /v1/session-details: a batch read of several sessions in one request (a
    watcher records hundreds of finished sessions a second; one request each did not keep
    up). Every asked id is in exactly one of the three lists."""

    #: The asked sessions the agent holds, in the order asked.
    sessions: list[SessionDetail] = Field(default_factory=list)
    #: Asked, and not held: unknown, or already evicted from the finished-session ring.
    missing: list[str] = Field(default_factory=list)
    #: Asked and not looked at: the answer reached its byte bound; ask for these again.
    more: list[str] = Field(default_factory=list)


class ErrorBody(Model):
    error: str
    status: int
