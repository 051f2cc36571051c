"""Fleet state as the console sees it, fed by snapshots and protocol events.

Pure Python on purpose (no Textual): it is what 2,000 events/s land in, so it must be
cheap and testable on its own. It is also where agent data enters the console: every
string an agent sent is cleaned here (`text.sanitized`), once, so no widget, title, toast
or modal can show a raw escape sequence. The raw identifiers an action sends back to the
agent (session and approval ids, workflow names) are kept beside, never shown.

Views do not get a callback per event; each view owns a `Changes` accumulator and
redraws what changed at its own pace, which is what keeps a key press fast however busy
the fleet is.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from ..protocol.models import AgentInfo, Approval, BudgetState, Event, Flag, SessionSummary
from ..protocol.scope import ScopeError, parse_scope
from .session_index import SessionOrders
from .text import clean, sanitized

Clock = Callable[[], datetime]
SessionKey = tuple[str, str]  # (agent source, session id)
ApprovalKey = tuple[str, str]  # (agent source, approval id)
ConnectionState = Literal["connecting", "live", "stale"]

#: Sessions still able to act: they count as active, and their alerts as open.
ACTIVE_STATUSES = frozenset({"running", "waiting_approval"})
_SPEND_WINDOW_S = 60
#: Event kinds whose `FleetStore.apply_event` does more than put the event's session
#: summary; the others may be coalesced (`ingest.py`) when a later one has it newer.
#: One list with `apply_event`: a kind it learns to handle more of belongs here too.
EVENTS_WITH_MORE = frozenset(
    {
        "flag",
        "approval_requested",
        "approval_resolved",
        "workflow_disabled",
        "workflow_enabled",
        "budgets_changed",
        "policy_changed",
        "sessions_evicted",
    }
)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class AgentState:
    """One endpoint the console follows. `source` is its key (registry name or URL)."""

    source: str
    url: str
    info: AgentInfo | None = None
    state: ConnectionState = "connecting"
    last_seen: datetime | None = None
    retries: int = 0
    error: str | None = None
    last_seq: int = 0
    #: [epoch second, USD] buckets of spend seen on the stream, for spend per minute.
    spend: deque[list[float]] = field(default_factory=lambda: deque(maxlen=_SPEND_WINDOW_S + 1))

    @property
    def name(self) -> str:
        return self.info.agent if self.info is not None else self.source

    @property
    def disabled_workflows(self) -> list[str]:
        if self.info is None:
            return []
        return [w.workflow for w in self.info.disabled_workflows if w.disabled]


@dataclass(slots=True)
class AlertEntry:
    """A flag as an alert. Latency runs from the triggering event to when it was shown.
    `session_id` and `workflow` are shown; the `*_ref` twins are what the agent sent,
    for actions and lookups only."""

    key: str
    number: int  # arrival order: alerts show newest first by this
    source: str
    agent: str
    session_id: str | None
    workflow: str | None
    flag: Flag
    received_at: datetime
    displayed_at: datetime | None = None
    incident: str | None = None
    session_ref: str | None = None
    workflow_ref: str | None = None

    @property
    def latency_ms(self) -> float:
        shown = self.displayed_at or self.received_at
        return max(0.0, (shown - self.flag.at).total_seconds() * 1000)


@dataclass(slots=True)
class ApprovalEntry:
    """`approval` is the clean copy to show; the refs are its raw ids, to act on."""

    source: str
    agent: str
    approval: Approval
    approval_ref: str = ""
    session_ref: str = ""

    @staticmethod
    def of(source: str, agent: str, approval: Approval) -> ApprovalEntry:
        return ApprovalEntry(source, agent, sanitized(approval), approval.id, approval.session_id)


@dataclass(slots=True)
class Changes:
    """What changed since a view last drew; a view takes it and redraws only that."""

    sessions: set[SessionKey] = field(default_factory=set)
    agents: set[str] = field(default_factory=set)
    alerts: bool = False
    approvals: bool = False

    def any(self) -> bool:
        return bool(self.sessions or self.agents or self.alerts or self.approvals)

    def take(self) -> Changes:
        taken = Changes(set(self.sessions), set(self.agents), self.alerts, self.approvals)
        self.sessions.clear()
        self.agents.clear()
        self.alerts = self.approvals = False
        return taken


@dataclass(slots=True)
class FleetRow:
    """The fleet view's line for one agent, computed in one pass over the sessions."""

    agent: AgentState
    active: int = 0
    open_alerts: int = 0
    spend_per_min: float = 0.0


class FleetStore:
    """Agents, sessions keyed by (agent, session id), alerts newest first, approvals."""

    def __init__(self, clock: Clock = utc_now, max_alerts: int = 1000) -> None:
        self.clock = clock
        self.agents: dict[str, AgentState] = {}
        self.sessions: dict[SessionKey, SessionSummary] = {}
        self.alerts: deque[AlertEntry] = deque(maxlen=max_alerts)
        self.approvals: dict[ApprovalKey, ApprovalEntry] = {}
        self.events_applied = 0
        self._by_source: dict[str, set[str]] = {}
        #: running or waiting sessions per agent, kept as sessions come and go, so the
        #: fleet view does not count them over every session (8 ms at 20,000) per tick
        self._active: dict[str, int] = {}
        self._alert_keys: set[str] = set()
        self._alert_number = 0
        self._displayed_number = 0  # alerts up to this arrival number are on screen
        self._watchers: list[Changes] = []
        #: a session's raw workflow name, kept only where it differs from the shown one
        self._workflow_refs: dict[SessionKey, str] = {}
        #: every session in every sessions-view column's order, brought up to date with
        #: `settle_orders()` once per refresh tick (so a sort or filter never sorts)
        self.orders = SessionOrders()
        self._unordered: set[SessionKey] = set()

    def settle_orders(self) -> None:
        """Re-place the sessions changed since the last call in the column orders."""
        if self._unordered:
            keys, self._unordered = self._unordered, set()
            self.orders.update(self.sessions, keys)

    def mark_alerts_displayed(self, at: datetime) -> None:
        """The screen was just drawn: every alert since the last draw is on it (the status
        bar counts alerts in every view), so their event-to-display time ends here."""
        for alert in self.alerts:  # newest first: stop at the first one already shown
            if alert.number <= self._displayed_number:
                break
            alert.displayed_at = at
        self._displayed_number = self._alert_number

    # -- observers -------------------------------------------------------------------
    def watch(self) -> Changes:
        """A change accumulator that starts out 'everything changed'."""
        changes = Changes(set(self.sessions), set(self.agents), True, True)
        self._watchers.append(changes)
        return changes

    def unwatch(self, changes: Changes) -> None:
        if changes in self._watchers:
            self._watchers.remove(changes)

    def _session_changed(self, key: SessionKey) -> None:
        self._unordered.add(key)
        for watcher in self._watchers:
            watcher.sessions.add(key)

    def _agent_changed(self, source: str) -> None:
        for watcher in self._watchers:
            watcher.agents.add(source)

    def _alerts_changed(self) -> None:
        for watcher in self._watchers:
            watcher.alerts = True

    def _approvals_changed(self) -> None:
        for watcher in self._watchers:
            watcher.approvals = True

    # -- agents ----------------------------------------------------------------------
    def add_agent(self, source: str, url: str) -> AgentState:
        agent = self.agents.get(source)
        if agent is None:
            agent = self.agents[source] = AgentState(source, url)
            self._by_source[source] = set()
            self._agent_changed(source)
        return agent

    def agent_name(self, source: str) -> str:
        agent = self.agents.get(source)
        return agent.name if agent is not None else source

    def mark_live(self, source: str, info: AgentInfo | None = None) -> None:
        agent = self.agents[source]
        was_stale = agent.state == "stale"
        if info is not None:
            agent.info = sanitized(info)
        agent.state = "live"
        agent.last_seen = self.clock()
        agent.retries = 0
        agent.error = None
        self._agent_changed(source)
        if was_stale:
            self._touch_sessions_of(source)

    def mark_stale(self, source: str, error: str, retries: int) -> str:
        """Rows freeze and show when the agent was last seen; nothing is dropped. Returns
        the error as stored (clean: it quotes what the endpoint answered)."""
        agent = self.agents[source]
        was_stale = agent.state == "stale"
        agent.state = "stale"
        agent.error = clean(" ".join(error.split()), 300)
        agent.retries = retries
        self._agent_changed(source)
        if not was_stale:
            self._touch_sessions_of(source)
        return agent.error

    def is_stale(self, source: str) -> bool:
        agent = self.agents.get(source)
        return agent is not None and agent.state == "stale"

    def _touch_sessions_of(self, source: str) -> None:
        for session_id in self._by_source.get(source, ()):
            self._session_changed((source, session_id))

    # -- snapshot --------------------------------------------------------------------
    def apply_snapshot(
        self,
        source: str,
        info: AgentInfo,
        sessions: Iterable[SessionSummary],
        approvals: Iterable[Approval],
    ) -> None:
        """Replace what is known about one agent with what it reports now."""
        self.add_agent(source, self.agents[source].url if source in self.agents else source)
        agent = self.agents[source]
        now = self.clock()
        seen: set[str] = set()
        for summary in sessions:
            seen.add(summary.id)
            self._put_session(source, summary, now, count_spend=False)
        for gone in self._by_source[source] - seen:
            self._drop_session(source, gone)
        for key in [k for k in self.approvals if k[0] == source]:
            del self.approvals[key]
        agent.last_seq = info.last_event_seq
        self.mark_live(source, info)
        for approval in approvals:
            if approval.status == "pending":
                self.approvals[(source, approval.id)] = ApprovalEntry.of(
                    source, agent.name, approval
                )
        self._approvals_changed()

    # -- events ----------------------------------------------------------------------
    def apply_event(self, source: str, event: Event) -> None:
        """Apply one event; replays (already reflected in a snapshot) change nothing."""
        agent = self.agents[source]
        now = self.clock()
        self.events_applied += 1
        agent.last_seq = max(agent.last_seq, event.seq)
        agent.last_seen = now
        if event.session is not None:
            self._put_session(source, event.session, now, count_spend=True)
        kind = event.type
        if kind == "flag" and event.flag is not None:
            session = event.session
            session_id = event.session_id or (session.id if session is not None else None)
            workflow = event.workflow or (session.workflow if session is not None else None)
            self._add_alert(source, session_id, workflow, sanitized(event.flag), now)
        elif kind in ("approval_requested", "approval_resolved") and event.approval is not None:
            self._put_approval(source, event.approval)
        elif kind in ("workflow_disabled", "workflow_enabled") and event.workflow_state:
            self._put_workflow_state(agent, event)
        elif kind == "budgets_changed" and event.budgets is not None:
            self.apply_budgets(source, event.budgets)
        elif kind == "policy_changed" and event.policy is not None and agent.info is not None:
            agent.info.policy = sanitized(event.policy)
            self._agent_changed(source)
        elif kind == "sessions_evicted":
            evicted = event.data.get("session_ids", [])
            if isinstance(evicted, list):
                for session_id in evicted:
                    self._drop_session(source, str(session_id))

    def skip_event(self, source: str, event: Event) -> None:
        """An event whose summary a later queued one supersedes (`ingest.py` coalesces):
        counted and its position kept, nothing else to do."""
        agent = self.agents[source]
        self.events_applied += 1
        agent.last_seq = max(agent.last_seq, event.seq)
        agent.last_seen = self.clock()

    # -- answers to actions ----------------------------------------------------------
    def apply_answer(self, source: str, summary: SessionSummary) -> None:
        """A session as an action's answer has it (a kill): the agent sends no event for
        a session that had already ended, so without this its row would stay as it was."""
        if source in self.agents:
            self._put_session(source, summary, self.clock(), count_spend=False)

    def apply_budgets(self, source: str, state: BudgetState) -> None:
        """New limits at agent, workflow or session scope (an event, or an action's
        answer). A session's own limit shows in its cost/budget cell, so it goes there."""
        agent = self.agents.get(source)
        if agent is None:
            return
        try:
            scope = parse_scope(state.scope)
        except ScopeError:  # the agent's own answer or event: nothing it could name
            return
        if scope.kind == "session":
            key = (source, scope.name)
            summary = self.sessions.get(key)
            budgets = state.effective or state.budgets
            if summary is not None and summary.budget != budgets:
                self.sessions[key] = summary.model_copy(update={"budget": sanitized(budgets)})
                self._session_changed(key)
            return
        if agent.info is None:
            return
        if scope.kind == "agent":
            agent.info.budgets = state.budgets
        else:
            agent.info.workflow_budgets[clean(scope.name)] = state.budgets
        self._agent_changed(source)

    def incident_opened(self, alert: AlertEntry, incident: str) -> None:
        alert.incident = clean(incident, 80)
        self._alerts_changed()

    def _put_session(
        self, source: str, raw: SessionSummary, now: datetime, *, count_spend: bool
    ) -> None:
        key = (source, raw.id)
        old = self.sessions.get(key)
        if old is not None and raw.last_event_at < old.last_event_at:
            return  # an older view of the session arrived late
        summary = sanitized(raw)
        if summary.workflow != raw.workflow:
            self._workflow_refs[key] = raw.workflow
        elif key in self._workflow_refs:
            del self._workflow_refs[key]
        self.sessions[key] = summary
        self._by_source[source].add(raw.id)
        active = summary.status in ACTIVE_STATUSES
        if active != (old is not None and old.status in ACTIVE_STATUSES):
            self._active[source] = self._active.get(source, 0) + (1 if active else -1)
        self._session_changed(key)
        agent = self.agents[source]
        if count_spend:
            delta = summary.cost_usd - (old.cost_usd if old is not None else 0.0)
            if delta > 0:
                self._add_spend(agent, now, delta)
        if old is None or len(summary.flags) != len(old.flags):
            for flag in summary.flags:
                self._add_alert(source, raw.id, raw.workflow, flag, now)
        if old is None or old.status != summary.status:
            self._agent_changed(source)

    def _drop_session(self, source: str, session_id: str) -> None:
        key = (source, session_id)
        self._workflow_refs.pop(key, None)
        gone = self.sessions.pop(key, None)
        if gone is not None:
            if gone.status in ACTIVE_STATUSES:
                self._active[source] -= 1
            self._by_source[source].discard(session_id)
            self._session_changed(key)
            self._agent_changed(source)

    def _add_spend(self, agent: AgentState, now: datetime, delta: float) -> None:
        second = float(int(now.timestamp()))
        if agent.spend and agent.spend[-1][0] == second:
            agent.spend[-1][1] += delta
        else:
            agent.spend.append([second, delta])

    def spend_per_minute(self, source: str) -> float:
        agent = self.agents[source]
        cutoff = self.clock().timestamp() - _SPEND_WINDOW_S
        return sum(usd for second, usd in agent.spend if second > cutoff)

    def _add_alert(
        self,
        source: str,
        session_id: str | None,
        workflow: str | None,
        flag: Flag,
        now: datetime,
    ) -> None:
        """`session_id` and `workflow` as the agent sent them; `flag` already clean."""
        key = f"{source}\x00{session_id}\x00{flag.kind}\x00{flag.at.isoformat()}\x00{flag.message}"
        if key in self._alert_keys:
            return
        if len(self.alerts) == self.alerts.maxlen:
            self._alert_keys.discard(self.alerts[-1].key)
        self._alert_keys.add(key)
        self._alert_number += 1
        entry = AlertEntry(
            key,
            self._alert_number,
            source,
            self.agent_name(source),
            None if session_id is None else clean(session_id),
            None if workflow is None else clean(workflow),
            flag,
            now,
            session_ref=session_id,
            workflow_ref=workflow,
        )
        self.alerts.appendleft(entry)
        self._alerts_changed()

    def _put_approval(self, source: str, approval: Approval) -> None:
        key = (source, approval.id)
        if approval.status == "pending":
            self.approvals[key] = ApprovalEntry.of(source, self.agent_name(source), approval)
        else:
            self.approvals.pop(key, None)
        self._approvals_changed()

    def _put_workflow_state(self, agent: AgentState, event: Event) -> None:
        state = sanitized(event.workflow_state)
        if agent.info is None or state is None:
            return
        kept = [w for w in agent.info.disabled_workflows if w.workflow != state.workflow]
        if state.disabled:
            kept.append(state)
        agent.info.disabled_workflows = kept
        if state.workflow not in agent.info.workflows:
            agent.info.workflows.append(state.workflow)
        self._agent_changed(agent.source)

    # -- queries ---------------------------------------------------------------------
    def workflow_ref(self, key: SessionKey) -> str | None:
        """The session's workflow as the agent named it: what disable and budgets send."""
        summary = self.sessions.get(key)
        if summary is None:
            return None
        return self._workflow_refs.get(key, summary.workflow)

    def sessions_of(self, source: str) -> Iterator[SessionSummary]:
        for session_id in self._by_source.get(source, ()):
            yield self.sessions[(source, session_id)]

    def alert_open(self, alert: AlertEntry) -> bool:
        """The one definition of an open alert, used by the header, the fleet view and
        the alerts view: a warning or critical flag whose session is still running or
        waiting for an approval (or that belongs to no session). An info flag, or one on
        a session that ended or that the agent no longer holds, is history."""
        if alert.flag.severity == "info":
            return False
        if alert.session_ref is None:
            return True
        summary = self.sessions.get((alert.source, alert.session_ref))
        return summary is not None and summary.status in ACTIVE_STATUSES

    def open_alerts(self) -> dict[str, int]:
        """Open alerts per agent source (every agent listed, zero included)."""
        counts = dict.fromkeys(self.agents, 0)
        for alert in self.alerts:
            if self.alert_open(alert):
                counts[alert.source] = counts.get(alert.source, 0) + 1
        return counts

    def fleet(self) -> list[FleetRow]:
        rows = {
            source: FleetRow(agent, active=self._active.get(source, 0))
            for source, agent in self.agents.items()
        }
        for source, count in self.open_alerts().items():
            if source in rows:
                rows[source].open_alerts = count
        for source, row in rows.items():
            row.spend_per_min = self.spend_per_minute(source)
        return list(rows.values())

    def workflow_disabled(self, source: str, workflow: str) -> bool:
        agent = self.agents.get(source)
        return agent is not None and workflow in agent.disabled_workflows
