"""Budgets by scope and the limits in force for one session.

Precedence, narrowest first: session > workflow > agent (set live) > the policy's @max_*
annotations > config defaults. The effective limits are merged once per change, not per
call: each session caches them against the book's revision number, so the hot path reads
five plain numbers.
"""

from __future__ import annotations

import threading
from typing import NamedTuple

from ..protocol.models import BUDGET_FIELDS, Budgets, BudgetState, BudgetUpdate
from ..protocol.scope import parse_scope


class Limits(NamedTuple):
    """Effective limits as plain numbers (None = unlimited) for the hot path."""

    max_cost_usd_session: float | None
    max_cost_usd_loop: float | None
    max_tool_calls: int | None
    max_consecutive_tool_calls: int | None
    max_output_tokens: int | None

    def to_budgets(self) -> Budgets:
        return Budgets(**self._asdict())


class BudgetBook:
    def __init__(self, defaults: Budgets) -> None:
        self._defaults = defaults
        self._policy = Budgets()
        self._agent = Budgets()
        self._workflows: dict[str, Budgets] = {}
        self._sessions: dict[str, Budgets] = {}
        self._lock = threading.Lock()
        #: Bumped on every change; sessions compare it to their cached limits.
        self.revision = 0
        self._agent_scope: tuple[int, Budgets] | None = None  # (revision, merged)
        # limits of sessions with no limit of their own: workflow (None: none) -> (rev, limits)
        self._shared: dict[str | None, tuple[int, Limits]] = {}

    def set_policy(self, budgets: Budgets) -> None:
        with self._lock:
            self._policy = budgets
            self.revision += 1

    def agent_scope(self) -> Budgets:
        """Agent-wide limits in force: live changes over the policy over the defaults.
        Merged once per revision: every new session starts from it."""
        revision, cached = self.revision, self._agent_scope
        if cached is not None and cached[0] == revision:
            return cached[1]
        merged = self._agent.merged_over(self._policy.merged_over(self._defaults))
        self._agent_scope = (revision, merged)
        return merged

    def policy_budgets(self) -> Budgets:
        return self._policy

    def workflow_budgets(self) -> dict[str, Budgets]:
        return dict(self._workflows)

    def limits_for(self, workflow: str, session_id: str) -> Limits:
        """The limits in force for one session. Sessions without a limit of their own share
        one Limits per workflow scope and revision (a live runtime holds tens of thousands)."""
        revision = self.revision
        wf = self._workflows.get(workflow)
        own = self._sessions.get(session_id)
        key = None if wf is None else workflow
        if own is None:
            shared = self._shared.get(key)
            if shared is not None and shared[0] == revision:
                return shared[1]
        merged = self.agent_scope()
        if wf is not None:
            merged = wf.merged_over(merged)
        if own is not None:
            merged = own.merged_over(merged)
        limits = Limits(*(getattr(merged, name) for name in BUDGET_FIELDS))
        if own is None:
            self._shared[key] = (revision, limits)
        return limits

    def apply(self, update: BudgetUpdate) -> BudgetState:
        """Apply the fields the caller sent; null clears that scope's own limit."""
        scope = parse_scope(update.scope)
        with self._lock:
            if scope.kind == "agent":
                current = self._agent
            elif scope.kind == "workflow":
                current = self._workflows.get(scope.name, Budgets())
            else:
                current = self._sessions.get(scope.name, Budgets())
            data = current.model_dump()
            data.update(update.changes())
            changed = Budgets(**data)
            if scope.kind == "agent":
                self._agent = changed
            elif scope.kind == "workflow":
                self._workflows[scope.name] = changed
            else:
                self._sessions[scope.name] = changed
            self.revision += 1
        return BudgetState(scope=str(scope), budgets=changed)

    def forget_session(self, session_id: str) -> None:
        with self._lock:
            if self._sessions.pop(session_id, None) is not None:
                self.revision += 1
