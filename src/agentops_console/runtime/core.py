"""`Runtime`: the object an agent process embeds, and the control surface its endpoint serves.

One Runtime per agent process. The agent's threads (or event loop) open sessions and make
guarded calls; the endpoint's threads read snapshots and apply operator actions. Shared
state changes under one lock; the per-call hot path takes no lock except the event log's.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from ..protocol.models import (
    AgentInfo,
    Approval,
    ApprovalDecision,
    BudgetState,
    BudgetUpdate,
    KillInfo,
    PolicyBundle,
    PolicyState,
    SessionDetail,
    SessionStatus,
    SessionSummary,
    WorkflowState,
)
from ..protocol.scope import parse_scope
from .approvals import ApprovalBook
from .budgets import BudgetBook
from .config import RuntimeConfig
from .errors import SessionKilled
from .events import EventLog
from .genai_span import GenAISpan
from .policy import CompiledPolicy, ToolSpec
from .pricing import Pricer
from .retention import Redactor, Retention
from .session import Session, SummaryCache
from .spans import utc
from .stats import RuntimeStats
from .sweeper import Sweeper, sweep_every
from .tokens import announce, checked_token, from_env, generate, remove_token_file, write_token_file

if TYPE_CHECKING:
    from .otel import GenAISpanProcessor, OTelMapper
    from .otel_export import OTelExporter
    from .server import EndpointServer

F = TypeVar("F", bound=Callable[..., Any])
#: OTel conversations killed, remembered past the finished ring, so that a later run of one
#: the runtime no longer holds starts killed (bounded: the oldest kills are forgotten first).
KILLED_CONVERSATIONS_KEPT = 10_000
SessionPhase = Literal["active", "finished"]


@dataclass(slots=True)
class Disabled:
    operator: str
    reason: str
    at: float


class Runtime:
    """Records sessions and guards every tool and LLM call of one agent process."""

    def __init__(
        self,
        agent: str,
        version: str,
        *,
        tenant: str | None = None,
        token: str | None = None,
        read_token: str | None = None,
        policy: str | None = None,
        policy_version: str | None = None,
        config: RuntimeConfig | str | Path | None = None,
        workflows: Iterable[str] = (),
        tools: Iterable[ToolSpec] = (),
        redact: Redactor | None = None,
        tracer_provider: Any = None,
        export_otel: bool | None = None,
    ) -> None:
        if isinstance(config, str | Path):
            config = RuntimeConfig.from_toml(config)
        self.config = config or RuntimeConfig()
        # what leaves the process (docs/runtime.md, "Retention and redaction")
        self.retention = Retention(self.config, redact)
        self.exporter: OTelExporter | None = None
        if tracer_provider is not None or (
            self.config.export_otel if export_otel is None else export_otel
        ):
            from .otel_export import OTelExporter

            self.exporter = OTelExporter(self, tracer_provider)
        self.agent_name = agent
        self.version = version
        self.tenant = tenant
        # the control token allows everything, the read token only reads; with no control
        # token given (argument, then the config's variable) one is generated: the endpoint
        # is never open, not even on loopback (a browser page can reach loopback)
        given = checked_token(token, "token") or from_env(self.config.token_env, "token")
        self.token: str = given or generate()
        self.token_generated = given is None
        self.read_token = checked_token(read_token, "read_token") or from_env(
            self.config.read_token_env, "read_token"
        )
        if self.read_token is not None and self.read_token == self.token:
            raise ValueError("read_token must differ from token")
        self._token_file: Path | None = None
        self.events = EventLog(self.config.event_log_size)
        self.stats = RuntimeStats()
        #: the recently built session summaries (session.SummaryCache: bounded, not per session)
        self.summaries = SummaryCache()
        self.pricer = Pricer(self.config.prices)
        self.budgets = BudgetBook(self.config.budgets)
        self.approvals = ApprovalBook(self.config.approval_timeout_s)
        self.tools: dict[str, ToolSpec] = {t.name: t for t in tools}
        self.workflows: set[str] = set(workflows)
        self.disabled: dict[str, Disabled] = {}
        self.policy: CompiledPolicy | None = None
        self.started_at = time.time()
        self._lock = threading.RLock()
        self._kill_lock = threading.Lock()
        self._killed_conversations: OrderedDict[str, KillInfo] = OrderedDict()
        self._active: dict[str, Session] = {}
        self._finished: OrderedDict[str, Session] = OrderedDict()
        # position of each session in _active / _finished, so a page cursor survives
        # sessions starting, ending and being evicted meanwhile
        self._order: dict[SessionPhase, dict[str, int]] = {"active": {}, "finished": {}}
        self._ordinals = itertools.count(1)
        self._server: EndpointServer | None = None
        self._mapper: OTelMapper | None = None
        # idle OTel sessions end on time while the endpoint runs (see runtime.sweeper)
        self._sweeper = Sweeper(
            lambda: self.sweep_idle(self.config.otel_idle_s), sweep_every(self.config.otel_idle_s)
        )
        if policy is not None:
            self._install_policy(CompiledPolicy.compile(policy, policy_version or version))

    # -- lifecycle -------------------------------------------------------------------
    def start(self, host: str = "127.0.0.1", port: int = 0, **server_options: Any) -> str:
        """Serve the endpoint on a background thread; returns its base URL."""
        from .server import EndpointServer

        if self._server is not None:
            return self._server.url
        self.events.reopen()
        self._sweeper.start()
        options: dict[str, Any] = {
            "read_token": self.read_token,
            "allowed_origins": self.config.allowed_origins,
            "allowed_hosts": self.config.allowed_hosts,
            "max_connections": self.config.max_connections,
            "max_unauthenticated": self.config.max_unauthenticated_connections,
            "header_timeout_s": self.config.header_timeout_s,
        }
        options.update(server_options)
        self._server = EndpointServer(self, host, port, self.token, **options)
        if self.token_generated:
            try:
                self._token_file = write_token_file(self.agent_name, self._server.port, self.token)
            except OSError:
                self._token_file = None
            announce(self.agent_name, self._server.url, self._token_file)
        return self._server.url

    @property
    def url(self) -> str | None:
        return None if self._server is None else self._server.url

    @property
    def endpoint(self) -> EndpointServer | None:
        """The running endpoint server (None while stopped)."""
        return self._server

    def stop(self) -> None:
        """Close the endpoint and release waiters; no thread or socket is left behind."""
        self._sweeper.stop()
        self.approvals.close()
        self.events.close()
        if self._server is not None:
            self._server.close()
            self._server = None
        remove_token_file(self._token_file)
        self._token_file = None

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what agent code uses --------------------------------------------------------
    def session(
        self,
        workflow: str,
        principal: str,
        *,
        tenant: str | None = None,
        session_id: str | None = None,
        approved_change: bool = False,
        source: Literal["api", "otel"] = "api",
    ) -> Session:
        """Open a session; a disabled workflow refuses it with SessionKilled."""
        state = self.disabled.get(workflow)
        if state is not None:
            raise SessionKilled(f"workflow {workflow} is disabled ({state.reason or 'no reason'})")
        session = Session(
            self,
            session_id or uuid.uuid4().hex[:16],
            workflow,
            principal,
            tenant if tenant is not None else self.tenant,
            source=source,
            approved_change=approved_change,
        )
        with self._lock:
            if session.id in self._active:
                raise ValueError(f"session {session.id} is already running")
            self._active[session.id] = session
            self._order["active"][session.id] = next(self._ordinals)
            self.workflows.add(workflow)
            self.stats.sessions_active = len(self._active)
            self.stats.sessions_total += 1
        self.events.publish("session_started", session)
        return session

    def register_tool(self, spec: ToolSpec) -> ToolSpec:
        self.tools[spec.name] = spec
        return spec

    def tool(self, name: str | None = None, **spec: Any) -> Callable[[F], F]:
        """Decorate a tool function so every call is guarded (sync or async).

        The session comes from the `session=` keyword of the call, or the one made current
        with `with rt.session(...)` on this thread / task.
        """
        from .decorator import guarded

        def wrap(func: F) -> F:
            tool_name = name or func.__name__
            self.register_tool(ToolSpec(tool_name, **spec))
            return guarded(self, tool_name, func)

        return wrap

    def span_processor(self) -> GenAISpanProcessor:
        """An OpenTelemetry SpanProcessor: add it to a TracerProvider, change nothing else."""
        from .otel import GenAISpanProcessor

        return GenAISpanProcessor(self)

    # -- endpoint control surface ----------------------------------------------------
    def get(self, session_id: str) -> Session | None:
        return self._active.get(session_id) or self._finished.get(session_id)

    def session_summaries(self) -> list[SessionSummary]:
        with self._lock:
            sessions = [*self._active.values(), *self._finished.values()]
        return [s.summary() for s in sessions]

    def session_page(
        self, phases: tuple[SessionPhase, ...], limit: int, after: tuple[SessionPhase, int] | None
    ) -> tuple[list[Session], tuple[SessionPhase, int] | None]:
        """Up to `limit` sessions, running ones then finished ones (each in the order they
        got there), after the position `after`; also the position to continue from.

        The lock is held only to copy references, and only the page's sessions are looked
        at, so a first page costs the same at 100 sessions or 100,000. Sessions, not their
        summaries: the server builds and writes those a slice at a time (server.page_json).
        A session that ends while a client pages may be listed twice (once running, once
        finished), never lost.
        """
        page: list[Session] = []
        last: tuple[SessionPhase, int] | None = None
        started = after is None
        for phase in phases:
            started = started or (after is not None and phase == after[0])
            if not started:
                continue
            floor = after[1] if after is not None and phase == after[0] else 0
            for ordinal, session in self._ranked(phase, floor, limit + 1 - len(page)):
                if len(page) == limit:
                    return page, last
                page.append(session)
                last = (phase, ordinal)
        return page, None

    def _ranked(self, phase: SessionPhase, floor: int, wanted: int) -> list[tuple[int, Session]]:
        """(position, session) in `phase` after `floor`: the first `wanted` under the lock
        when starting at the beginning, else a copy of references filtered outside it."""
        order = self._order[phase]
        with self._lock:
            pool = self._active if phase == "active" else self._finished
            if floor == 0:
                head = itertools.islice(pool.items(), wanted)
                return [(order[key], session) for key, session in head]
            items = list(pool.items())
        ranked = []
        for key, session in items:
            ordinal = order.get(key)  # None: it left this phase after the copy
            if ordinal is not None and ordinal > floor:
                ranked.append((ordinal, session))
        return ranked

    def session_detail(self, session_id: str) -> SessionDetail | None:
        session = self.get(session_id)
        return None if session is None else session.detail()

    def agent_info(self) -> AgentInfo:
        with self._lock:
            active = len(self._active)
            workflows = sorted(self.workflows | set(self.disabled))
        return AgentInfo(
            agent=self.agent_name,
            version=self.version,
            tenant=self.tenant,
            workflows=workflows,
            disabled_workflows=[self._workflow_state(w) for w in sorted(self.disabled)],
            policy=self.policy_state(),
            budgets=self.budgets.agent_scope(),
            workflow_budgets=self.budgets.workflow_budgets(),
            started_at=utc(self.started_at),
            sessions_active=active,
            sessions_total=self.stats.sessions_total,
            sessions_evicted=self.stats.sessions_evicted,
            cost_usd_total=round(self.stats.cost_usd_total, 9),
            last_event_seq=self.events.last_seq,
        )

    def kill(self, session_id: str, operator: str, reason: str = "") -> SessionSummary | None:
        """Kill a session: its next tool or LLM call raises SessionKilled. Idempotent.

        An OTel conversation is killed even between its runs (ended `completed`): its next
        run re-opens it killed (`Session.reopen`), and the kill is remembered past the
        finished ring (KILLED_CONVERSATIONS_KEPT), so a run of one the runtime no longer
        holds starts killed too. A finished API session has nothing left to kill."""
        session = self.get(session_id)
        if session is None:
            return None
        info = KillInfo(operator=operator, reason=reason, at=utc(time.time()))
        if session.source == "otel":
            with self._kill_lock:
                kept = self._killed_conversations
                kept.setdefault(session_id, info)
                while len(kept) > KILLED_CONVERSATIONS_KEPT:
                    kept.popitem(last=False)
        self._apply_kill(session, info)
        return session.summary()

    def remembered_kill(self, session: Session) -> None:
        """A new session of an OTel conversation killed before: killed from the start (its
        run's guarded calls are refused), not counted as a new kill."""
        info = self._killed_conversations.get(session.id)
        if info is not None:
            self._apply_kill(session, info, counted=False)

    def _apply_kill(self, session: Session, info: KillInfo, *, counted: bool = True) -> None:
        # a lock of its own: the runtime lock is taken by every session start and end, and
        # under 50 busy agent threads waiting for it put the kill behind their turnover
        with self._kill_lock:
            if session.killed is not None or (
                session.ended is not None and session.source != "otel"
            ):
                return  # already stopped: nothing left to kill
            session.killed = info
            session.status = "killed"
            if counted:
                self.stats.sessions_killed_total += 1
        message = f"killed by {info.operator}: {info.reason or 'no reason given'}"
        session.flag("killed", message, severity="critical")
        self.approvals.cancel_session(session.id, info.operator, info.reason)
        self.events.publish("session_killed", session, operator=info.operator, reason=info.reason)

    def disable_workflow(self, name: str, operator: str, reason: str = "") -> WorkflowState:
        """Refuse new sessions of the workflow and stop running ones at their next call."""
        with self._lock:
            if name not in self.disabled:
                self.disabled[name] = Disabled(operator, reason, time.time())
            running = [s for s in self._active.values() if s.workflow == name]
        for session in running:
            self.approvals.cancel_session(session.id, operator, reason or "workflow disabled")
        state = self._workflow_state(name)
        state.sessions_stopped = len(running)
        self.events.publish(
            "workflow_disabled",
            workflow=name,
            operator=operator,
            reason=reason,
            workflow_state=state,
        )
        return state

    def enable_workflow(self, name: str, operator: str, reason: str = "") -> WorkflowState:
        with self._lock:
            self.disabled.pop(name, None)
        state = self._workflow_state(name)
        self.events.publish(
            "workflow_enabled",
            workflow=name,
            operator=operator,
            reason=reason,
            workflow_state=state,
        )
        return state

    def _workflow_state(self, name: str) -> WorkflowState:
        state = self.disabled.get(name)
        if state is None:
            return WorkflowState(workflow=name, disabled=False)
        return WorkflowState(
            workflow=name,
            disabled=True,
            operator=state.operator,
            reason=state.reason,
            at=utc(state.at),
        )

    def set_budgets(self, update: BudgetUpdate) -> BudgetState:
        """Change limits live; LookupError for an unknown session scope."""
        scope = parse_scope(update.scope)
        if scope.kind == "session" and self.get(scope.name) is None:
            raise LookupError(f"no session {scope.name}")
        state = self.budgets.apply(update)
        if scope.kind == "agent":
            state.effective = self.budgets.agent_scope()
        elif scope.kind == "session":
            session = self.get(scope.name)
            if session is not None:
                state.effective = session.limits().to_budgets()
                session.touch()
        else:
            state.effective = state.budgets.merged_over(self.budgets.agent_scope())
        self.events.publish(
            "budgets_changed",
            operator=update.operator,
            reason=update.reason,
            budgets=state,
            workflow=scope.workflow,
            session_id=scope.session_id,
        )
        return state

    def pending_approvals(self) -> list[Approval]:
        return [a.to_model() for a in self.approvals.pending()]

    def decide_approval(self, approval_id: str, decision: ApprovalDecision) -> Approval | None:
        approval = self.approvals.decide(approval_id, decision)
        return None if approval is None else approval.to_model()

    def load_policy(self, bundle: PolicyBundle) -> PolicyState:
        """Swap the policy atomically; an invalid one raises PolicyError and changes nothing.

        Kills and workflow disables are operator state, not policy: they stay in force.
        """
        compiled = CompiledPolicy.compile(bundle.cedar, bundle.version)
        self._install_policy(compiled)
        state = self.policy_state()
        self.events.publish("policy_changed", operator=bundle.operator, policy=state)
        return state

    def _install_policy(self, compiled: CompiledPolicy) -> None:
        self.policy = compiled
        self.budgets.set_policy(compiled.budgets)

    def policy_version(self) -> str | None:
        return None if self.policy is None else self.policy.version

    def policy_state(self) -> PolicyState:
        policy = self.policy
        if policy is None:
            return PolicyState(version=None, sha256=None, loaded_at=None)
        return PolicyState(
            version=policy.version,
            sha256=policy.sha256,
            loaded_at=utc(policy.loaded_at),
            policies=policy.count,
            budgets=policy.budgets,
        )

    def ingest_spans(self, spans: list[GenAISpan]) -> int:
        """Spans from OTLP/HTTP; returns how many became part of a session."""
        return self.otel_mapper().ingest(spans)

    def otel_mapper(self) -> OTelMapper:
        if self._mapper is None:
            from .otel import OTelMapper

            with self._lock:
                if self._mapper is None:
                    self._mapper = OTelMapper(self)
        return self._mapper

    # -- bookkeeping -----------------------------------------------------------------
    def _session_ended(self, session: Session) -> None:
        evicted: list[str] = []
        with self._lock:
            if self._active.pop(session.id, None) is None:
                return
            self._finished[session.id] = session
            self._order["active"].pop(session.id, None)
            self._order["finished"][session.id] = next(self._ordinals)
            while len(self._finished) > self.config.finished_sessions:
                old_id, _ = self._finished.popitem(last=False)
                self._order["finished"].pop(old_id, None)
                evicted.append(old_id)
            self.stats.sessions_active = len(self._active)
            self.stats.sessions_evicted += len(evicted)
        for old_id in evicted:
            self.budgets.forget_session(old_id)
        self.events.publish("session_ended", session)
        if evicted:
            self.events.publish(
                "sessions_evicted", data={"session_ids": evicted, "count": len(evicted)}
            )

    def _session_reopened(self, session: Session, status: SessionStatus) -> bool:
        """A later run of an ended OTel conversation: the session is active again (with
        `status`, or `killed` when a kill landed since the caller read it; `running`: its
        next end decides its outcome anew), so a kill reaches it
        and its next end is published again. False, the session left as it is, when the
        runtime does not hold it as finished (evicted meanwhile, or its end still under
        way on another thread)."""
        with self._lock:
            if self._finished.get(session.id) is not session:
                return False
            with self._kill_lock:  # killed since `status` was read: the run starts killed
                if session.killed is not None:
                    status = "killed"
                session.status = status
            if status == "running":
                session.outcome_value = session.outcome_reason = None
            del self._finished[session.id]
            self._order["finished"].pop(session.id, None)
            session.ended = None
            self._active[session.id] = session
            self._order["active"][session.id] = next(self._ordinals)
            self.stats.sessions_active = len(self._active)
        session.touch()
        self.events.publish("session_started", session)
        return True

    def active_sessions(self) -> list[Session]:
        with self._lock:
            return list(self._active.values())

    def sweep_idle(self, idle_s: float) -> int:
        """End OTel sessions nobody has touched for `idle_s`: they have no explicit end.
        A session the agent opened itself ends when the agent says so, however quiet."""
        cutoff = time.time() - idle_s
        stale = [s for s in self.active_sessions() if s.source == "otel" and s.last_event < cutoff]
        for session in stale:
            with contextlib.suppress(Exception):
                session.end("completed")
        return len(stale)
