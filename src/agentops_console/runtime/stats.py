"""Counters the runtime keeps for /metrics; plain ints so the hot path only adds."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(slots=True)
class RuntimeStats:
    sessions_active: int = 0
    sessions_total: int = 0
    sessions_evicted: int = 0
    tool_calls_total: int = 0
    llm_calls_total: int = 0
    tokens_in_total: int = 0
    tokens_out_total: int = 0
    cost_usd_total: float = 0.0
    sessions_killed_total: int = 0
    approvals_pending: int = 0
    otel_spans_total: int = 0
    otlp_rejected_total: int = 0
    #: active OTel sessions ended to stay within `otel_sessions_max`
    otel_sessions_evicted: int = 0
    #: failures inside the endpoint that no response could report (kept off stderr)
    endpoint_errors: int = 0
    #: tool-call policy outcomes by decision (allow, deny, approval_required, ...)
    policy_decisions: Counter[str] = field(default_factory=Counter)
    #: flags raised by kind (runaway_loop, budget_exceeded, ...)
    flags: Counter[str] = field(default_factory=Counter)
