"""The guard around one tool call: kill, disable, budgets, policy and human checkpoints.

Order matters and is the same for every path into the runtime (explicit API, decorator,
OpenTelemetry `on_start`): an operator's kill or disable first, then the hard budget
limits, then the counters and detections, then the consecutive-call checkpoint, then
Cedar. A refused call raises before the body runs and is still recorded as a span, so
the console shows what was attempted. A checkpoint is the only wait: whatever its answer,
the session-wide checks run again after it (`resume`), before anything else.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import TYPE_CHECKING, Any

from ..protocol.models import SpanOutcome
from ..protocol.text import one_line
from .errors import BudgetExceeded, PolicyDenied, SessionEnded, SessionKilled
from .policy import ToolSpec, cedar_value, micro_usd
from .spans import PolicyNote, SpanRecord

if TYPE_CHECKING:
    from types import TracebackType

    from .approvals import PendingApproval
    from .session import Session

_NO_POLICY = PolicyNote("allow")
#: Why a call recorded after the fact ran unguarded (the `policy_denied` flag says so).
LATE_OTLP = "reported over OTLP"
LATE_ATTRIBUTES = (
    "its framework set the span's attributes only when it ended, so the span processor "
    "could not guard it at its start"
)


#: Longest error text kept on a span.
_ERROR_CHARS = 500


class ToolCall:
    """`with s.tool_call(name, args) as call:`: the body runs only when the call is allowed.

    Inside the body, `call.output = ...` records the result, `call.retrieved(...)` marks a
    retrieval with its confidence, and `call.cost(usd)` adds a tool's own spend.
    """

    __slots__ = (
        "_approval_id",
        "_human_approved",
        "_retries",
        "_stage",
        "_t0",
        "arguments",
        "session",
        "span",
        "spec",
    )

    def __init__(
        self,
        session: Session,
        name: str,
        arguments: Any,
        *,
        version: str | None = None,
        parent_id: str | None = None,
    ) -> None:
        self.session = session
        spec = session.runtime.tools.get(name)
        self.spec = spec if spec is not None else ToolSpec(name)
        self.arguments = arguments  # raw: what the guard decides on, never shown
        kept = session.runtime.retention.apply(
            "arguments", arguments, lambda: session.redact_context(name)
        )
        self.span = SpanRecord.tool_started(
            session.id,
            "retrieval" if self.spec.category == "retrieval" else "tool",
            name,
            session.loop,
            time.time(),
            parent_id,
            session.principal,
            version or self.spec.version,
            kept,
        )
        self._t0 = 0.0
        self._stage = 0
        self._human_approved = False
        self._retries = 0
        self._approval_id: str | None = None  # the answered checkpoint this call went through

    # -- the body's helpers ----------------------------------------------------------
    @property
    def output(self) -> Any:
        return self.span.output

    @output.setter
    def output(self, value: Any) -> None:
        """Kept after the retention rules and redaction: reading it back gives that copy."""
        session = self.session
        self.span.output = session.runtime.retention.apply(
            "output", value, lambda: session.redact_context(self.span.name)
        )

    def retrieved(self, confidence: float, context_tokens: int) -> None:
        self.span.kind = "retrieval"
        self.span.confidence = confidence
        self.session.note_retrieval(confidence, context_tokens, self.span.id)

    def cost(self, usd: float) -> None:
        """Add what the tool itself cost (an API fee, say) to the session's spend."""
        ok = isinstance(usd, int | float) and not isinstance(usd, bool)
        if not ok or not math.isfinite(usd) or usd < 0:
            raise ValueError(f"a tool's cost must be a finite number of USD >= 0: {usd!r}")
        self.span.cost_usd += usd
        self.session.add_usage(0, 0, usd)
        self.session.check_budgets()

    # -- sync and async entry --------------------------------------------------------
    def __enter__(self) -> ToolCall:
        pending = self.admit()
        while pending is not None:
            pending.wait()
            pending = self.resume(pending)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.finish(exc)

    async def __aenter__(self) -> ToolCall:
        pending = self.admit()
        while pending is not None:
            try:
                await pending.wait_async()
            except asyncio.CancelledError:
                # the agent gave up on this call: its checkpoint must not stay pending
                self._abandon(pending)
                raise
            pending = self.resume(pending)
        return self

    def _abandon(self, approval: PendingApproval) -> None:
        self._close_checkpoint(approval)
        self._refuse("error", f"{self.span.name}: cancelled while waiting for approval")

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    # -- the guard -------------------------------------------------------------------
    def admit(self) -> PendingApproval | None:
        """Run the checks; raise to refuse, or return a checkpoint to wait on."""
        session = self.session
        span = self.span
        rt = session.runtime
        rt.stats.tool_calls_total += 1
        self._guard_session()
        limits = session.limits()
        if limits.max_tool_calls is not None and session.tool_calls >= limits.max_tool_calls:
            refusal = session.stop_for_budget(
                f"max_tool_calls reached: {session.tool_calls} of {limits.max_tool_calls}",
                span.id,
            )
            self._refuse("budget_exceeded", str(refusal))
            raise refusal
        self._count()
        limit = limits.max_consecutive_tool_calls
        if limit is not None and session.consecutive_tool_calls > limit:
            session.flag(
                "consecutive_tool_calls",
                f"{session.consecutive_tool_calls - 1} consecutive tool calls without a human "
                f"(limit {limit}); checkpoint before {span.name}",
                span_id=span.id,
                key="consecutive",
            )
            self._stage = 1
            return self._checkpoint(
                f"{limit} consecutive tool calls without a human in between", None
            )
        return self._evaluate()

    def _count(self) -> None:
        """Counters, the started event and the detections every tool call gets."""
        session = self.session
        span = self.span
        rt = session.runtime
        session.tool_calls += 1
        session.consecutive_tool_calls += 1
        self._t0 = time.perf_counter()
        session.loop_cost().tool_calls += 1
        retries = session.count_step(span.name, self.arguments)
        session.check_budgets()  # the 80 % warning for max_tool_calls comes from here
        session.touch()
        rt.events.publish("span_started", session, span=span)
        if retries > rt.config.max_retries:
            session.flag(
                "runaway_loop",
                f"{span.name} retried {retries} times with the same arguments",
                severity="critical",
                span_id=span.id,
                key=f"runaway:{span.name}",
            )
        problems = self.spec.schema_violations(self.arguments)
        if problems:
            session.flag(
                "policy_near_miss",
                f"{span.name}: " + "; ".join(problems),
                span_id=span.id,
                key=f"near:{span.name}:{';'.join(problems)}",
            )
        self._retries = retries

    def _guard_session(self) -> None:
        """The session-wide refusals (kill, disabled workflow, ended, over budget), recorded
        on this call's span with the outcome each one means. Budgets are measured against
        the limits in force now, so a limit an operator lowered below the spend stops the
        session here, not one call later."""
        session = self.session
        try:
            session.check_budgets()
            session.check()
        except SessionKilled as exc:
            self._refuse("killed", str(exc))
            raise
        except SessionEnded as exc:
            self._refuse("error", str(exc))
            raise
        except BudgetExceeded as exc:
            self._refuse("budget_exceeded", str(exc))
            raise

    def _close_checkpoint(self, approval: PendingApproval) -> str:
        """The wait is over (answered, timed out, or abandoned): an unanswered checkpoint
        expires, the session runs again, and consoles hear of it. Returns the outcome."""
        session = self.session
        rt = session.runtime
        if session.status == "waiting_approval":
            session.status = "running"
        if approval.status == "pending":
            rt.approvals.expire(approval)
        rt.stats.approvals_pending = len(rt.approvals.pending())
        rt.events.publish("approval_resolved", session, approval=approval)
        return approval.status

    def resume(self, approval: PendingApproval) -> PendingApproval | None:
        """After a checkpoint: go on, or raise when it was denied or expired.

        Whatever the answer, the session-wide guard runs again first: a kill, a disabled
        workflow, an end or a budget change may have come while the call waited (or between
        the approval and this thread waking up), and none of them may be overtaken by it.
        This is the only way out of a wait, so no wait can skip the guard.
        """
        session = self.session
        rt = session.runtime
        status = self._close_checkpoint(approval)
        self._guard_session()  # killed, disabled, ended or over budget meanwhile: refused
        note = self.span.policy
        if status == "approved":
            session.consecutive_tool_calls = 1
            session._discard_flag_key("consecutive")
            self._approval_id = approval.id  # kept on the span's decision from here on
            if note is not None:
                note.decision = "approved"
            if self._stage == 1:
                self._stage = 2
                return self._evaluate()
            self._human_approved = True
            return self._evaluate(again=True)
        if status == "expired":
            session.flag(
                "approval_timeout",
                f"checkpoint for {self.span.name} expired unanswered",
                span_id=self.span.id,
            )
        decision = "expired" if status == "expired" else "rejected"
        self.span.policy = PolicyNote(
            decision, version=rt.policy_version(), approval_id=approval.id
        )
        rt.stats.policy_decisions[decision] += 1
        reason = f"{self.span.name}: human checkpoint {status}"
        if approval.decided_by:
            reason += f" by {approval.decided_by}"
        self._refuse("denied", reason)
        raise PolicyDenied(reason)

    def _evaluate(self, again: bool = False) -> PendingApproval | None:
        session = self.session
        rt = session.runtime
        policy = rt.policy
        if policy is None:
            self.span.policy = (
                _NO_POLICY
                if self._approval_id is None
                else PolicyNote("allow", approval_id=self._approval_id)
            )
            rt.stats.policy_decisions["allow"] += 1
            return None
        result = policy.evaluate(session.principal, session.tenant, self.spec, self._context())
        outcome = result.outcome
        if again and outcome == "approval_required":
            outcome = "deny"  # approved, yet still forbidden: the approval is not enough
        self.span.policy = PolicyNote(
            "approved" if again and outcome == "allow" else outcome,
            result.reasons,
            result.errors,
            policy.version,
            self._approval_id,
            evaluated_us=round(result.elapsed_us, 1),
        )
        rt.stats.policy_decisions[outcome] += 1
        if outcome == "allow":
            return None
        if outcome == "approval_required":
            return self._checkpoint(
                "policy " + ", ".join(result.reasons) + " requires human approval",
                result.reasons,
            )
        session.unauthorized_attempts += 1
        why = ", ".join(result.reasons) or "no policy permits it"
        message = f"{self.span.name} denied by policy: {why}"
        session.flag("policy_denied", message, severity="critical", span_id=self.span.id)
        self._refuse("denied", message)
        raise PolicyDenied(message)

    def _context(self) -> dict[str, Any]:
        session = self.session
        return {
            "tenant": session.tenant or "",
            "workflow": session.workflow,
            "arguments": cedar_value(self.arguments if isinstance(self.arguments, dict) else {}),
            "approved_change": session.approved_change,
            "human_approved": self._human_approved,
            "tool_calls": session.tool_calls,
            "consecutive_tool_calls": session.consecutive_tool_calls,
            "retries": self._retries,
            "loops": session.loop,
            "session_cost_micro_usd": micro_usd(session.cost_usd),
            "loop_cost_micro_usd": micro_usd(session.loop_cost_usd),
            "output_tokens": session.tokens_out,
        }

    def _checkpoint(self, reason: str, reasons: tuple[str, ...] | None) -> PendingApproval:
        session = self.session
        rt = session.runtime
        approval = rt.approvals.request(
            session.id,
            session.workflow,
            session.principal,
            self.span.name,
            self.span.arguments,
            reason,
        )
        self.span.policy = PolicyNote(
            "approval_required", reasons or (), (), rt.policy_version(), approval.id
        )
        session.status = "waiting_approval"
        rt.stats.approvals_pending = len(rt.approvals.pending())
        session.flag(
            "approval_required",
            f"{self.span.name}: {reason}",
            severity="info",
            span_id=self.span.id,
        )
        rt.events.publish("approval_requested", session, approval=approval)
        return approval

    def _end(
        self, outcome: SpanOutcome, error: str | None, latency_ms: float, ended: float | None = None
    ) -> None:
        """The span's end, however the call ended (refused, ran, reported after the fact):
        its outcome, one-line error and times, then it is kept and published."""
        span = self.span
        span.outcome = outcome
        span.error = None if error is None else one_line(error, _ERROR_CHARS)
        span.ended = time.time() if ended is None else ended
        span.latency_ms = latency_ms
        self.session.record_span(span)

    def _refuse(self, outcome: SpanOutcome, message: str) -> None:
        self._end(outcome, message, 0.0)

    def observe(
        self, started: float, ended: float, error: str | None, why: str = LATE_OTLP
    ) -> None:
        """Record a call that already ran: the policy is evaluated and its verdict flagged,
        but nothing can be refused any more. `why` says why it ran unguarded (it came over
        OTLP, or the framework set its span's attributes only when it ended)."""
        session = self.session
        rt = session.runtime
        rt.stats.tool_calls_total += 1
        self._count()
        span = self.span
        span.started = started
        policy = rt.policy
        if policy is not None:
            result = policy.evaluate(session.principal, session.tenant, self.spec, self._context())
            span.policy = PolicyNote(
                result.outcome,
                result.reasons,
                result.errors,
                policy.version,
                evaluated_us=round(result.elapsed_us, 1),
            )
            rt.stats.policy_decisions[result.outcome] += 1
            if result.outcome != "allow":
                session.unauthorized_attempts += result.outcome == "deny"
                session.flag(
                    "policy_denied" if result.outcome == "deny" else "approval_required",
                    f"{span.name} ran without enforcement ({why}): "
                    f"{result.outcome} by {', '.join(result.reasons) or 'no permit'}",
                    severity="critical" if result.outcome == "deny" else "warning",
                    span_id=span.id,
                )
        latency_ms = round(max(0.0, ended - started) * 1000, 3)
        self._end("error" if error else "ok", error or None, latency_ms, ended)

    def finish(self, exc: BaseException | None) -> None:
        if self.span.ended is not None:
            return  # refused: already recorded
        latency_ms = round((time.perf_counter() - self._t0) * 1000, 3)
        if exc is None:
            self._end("ok", None, latency_ms)
        else:
            self._end("error", f"{type(exc).__name__}: {exc}", latency_ms)
