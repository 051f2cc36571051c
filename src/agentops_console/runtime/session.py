"""One agent session: its counters, spans, flags, and the LLM and tool calls it makes.

The session is the unit an operator watches and stops. Everything here runs on the
agent's own thread, on every call, so state is plain slots and ints; the wire models
(`SessionSummary`, `SessionDetail`) are built only when the endpoint is asked.

A runtime may hold tens of thousands of live sessions (OpenTelemetry makes one per run), so
a session is slotted and creates its containers (flags, retry table, loop costs, usage
split) on first use, and its summary is kept in the runtime's bounded `SummaryCache`, not
on the session: an idle session costs about 1.5 KB plus its spans.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import threading
import time
from array import array
from collections import OrderedDict, deque
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any, Literal

from ..protocol.models import (
    FLAGS_KEPT,
    OUTCOMES,
    Flag,
    FlagKind,
    KillInfo,
    Outcome,
    SessionDetail,
    SessionStatus,
    SessionSummary,
    Severity,
)
from ..protocol.models import LoopCost as LoopCostModel
from ..protocol.text import one_line
from .budgets import Limits
from .errors import BudgetExceeded, GuardError, PolicyDenied, SessionEnded, SessionKilled
from .pricing import MAX_NAME, inclusive_counts, shown, too_long
from .retention import RedactContext
from .spans import SpanRecord, cost_split, utc

if TYPE_CHECKING:
    from types import TracebackType

    from .core import Runtime
    from .tool_call import ToolCall

#: Distinct steps remembered for retry counting before the table is reset.
_STEPS_KEPT = 5_000
#: Longest outcome reason kept (characters).
_REASON_CHARS = 500
#: What the agent may report; `unknown` is what a session without a report gets.
REPORTED_OUTCOMES: tuple[str, ...] = tuple(o for o in OUTCOMES if o != "unknown")
#: Final statuses of a session an operator or a budget stopped: a later run of the same
#: conversation does not run it again (`Session.reopen`).
_OPERATOR_STOPS = frozenset({"killed", "stopped"})
#: Summaries kept by a runtime's SummaryCache (the most recently built ones).
SUMMARIES_KEPT = 1_024
#: What `usage_split` reads for a session without an LLM call (never added to).
_NO_USAGE: UsageSplit


#: The session opened with `with`/`async with` on this thread or task (used by `rt.tool`).
current_session: ContextVar[Session | None] = ContextVar("agentops_session", default=None)


@functools.cache
def _tool_call_type() -> type[ToolCall]:
    """tool_call.py needs Session's module only for type checking, so the import runs one
    way; ToolCall is looked up once (an import statement per call cost more than the
    guard's kill check)."""
    from .tool_call import ToolCall

    return ToolCall


@functools.lru_cache(maxsize=256)
def _chat_name(model: str) -> str:
    """One `chat <model>` string per model, not one per span."""
    return f"chat {model}"


class UsageSplit:
    """A session's cache and reasoning tokens and its cost by what was billed, summed over
    its LLM calls; the six parts in one array of doubles (no float object per part)."""

    __slots__ = ("cache_read", "cache_write", "cost", "priced", "reasoning")

    def __init__(self) -> None:
        self.cache_read = 0
        self.cache_write = 0
        self.reasoning = 0
        self.priced = False
        self.cost = array("d", bytes(48))  # pricing.Cost.parts() order

    def add(self, counts: tuple[int, int, int, int, int], parts: tuple[float, ...] | None) -> None:
        """One call's usage (`inclusive_counts` order) and cost parts (None: unpriced)."""
        self.cache_read += counts[2]
        self.cache_write += counts[3]
        self.reasoning += counts[4]
        if parts is not None:
            self.priced = True
            cost = self.cost
            cost[0] += parts[0]
            cost[1] += parts[1]
            cost[2] += parts[2]
            cost[3] += parts[3]
            cost[4] += parts[4]
            cost[5] += parts[5]


_NO_USAGE = UsageSplit()


class LoopCost:
    """What one loop (an LLM call and the tool calls it leads to) spent."""

    __slots__ = ("cost_usd", "loop", "tokens_in", "tokens_out", "tool_calls")

    def __init__(self, loop: int) -> None:
        self.loop = loop
        self.cost_usd = 0.0
        self.tokens_in = 0
        self.tokens_out = 0
        self.tool_calls = 0


class SummaryCache:
    """The last `size` summaries built, keyed by session, each valid for one revision.

    Kept per runtime, not per session: a summary is ~4.5 KB, and a cache on every session
    held one for each idle session forever. Streams render the summary of the sessions that
    just changed and pages read a few hundred, so the recent ones are what is asked again
    (and event streams use the object's identity to render it once per batch)."""

    def __init__(self, size: int = SUMMARIES_KEPT) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._kept: OrderedDict[Session, tuple[int, SessionSummary]] = OrderedDict()

    def get(self, session: Session) -> SessionSummary:
        rev = session._rev
        with self._lock:
            hit = self._kept.get(session)
            if hit is not None and hit[0] == rev:
                self._kept.move_to_end(session)
                return hit[1]
        summary = SessionSummary(**session._summary_fields())
        with self._lock:
            self._kept[session] = (rev, summary)
            self._kept.move_to_end(session)
            while len(self._kept) > self._size:
                self._kept.popitem(last=False)
        return summary

    def __len__(self) -> int:
        return len(self._kept)


_c_encoder = getattr(json.encoder, "c_make_encoder", None)
#: `json.dumps(..., sort_keys=True, default=repr, separators=(",", ":"))` built once: dumps
#: with options builds a new encoder on every call, a third of the guard's own cost. No
#: cycle check (the marker table would be shared between threads): a cycle recurses to a
#: RecursionError, which falls back to repr like any other failure.
_step_encoder = (
    None
    if _c_encoder is None
    else _c_encoder(None, repr, json.encoder.encode_basestring_ascii, None, ":", ",", 1, 0, 1)
)


def step_key(tool: str, arguments: Any) -> str:
    """Identity of a step: the same tool with the same arguments is a retry."""
    try:
        if _step_encoder is not None:
            args = "".join(_step_encoder(arguments, 0))
        else:
            args = json.dumps(arguments, sort_keys=True, default=repr, separators=(",", ":"))
    except Exception:  # untrusted: too deep, a __repr__ that raises, keys that do not sort
        try:
            args = repr(arguments)
        except Exception:
            args = f"<{type(arguments).__name__} at {id(arguments):x}>"
    return f"{tool}\x00{args}"


#: More tokens than any model takes in one call: a value above this is garbage.
MAX_TOKENS = 10**9


def token_count(value: Any, strict: bool) -> int:
    """Tokens the agent reports. Its own call (`strict`) with nonsense is a bug in the
    agent and raises ValueError at once; telemetry (OTel) with nonsense counts 0, so it
    can neither crash the processor nor poison the session's budgets."""
    if type(value) is int and 0 <= value <= MAX_TOKENS:  # nearly always: no conversion
        return value
    number = math.nan
    if not isinstance(value, bool):
        with contextlib.suppress(TypeError, ValueError, OverflowError):
            number = float(value)  # ints, floats, numpy numbers, Decimal, "12"
    if math.isfinite(number) and 0 <= number <= MAX_TOKENS:
        return int(number)
    if strict:
        raise ValueError(f"token count must be a number from 0 to {MAX_TOKENS}: {value!r}")
    return 0


def billed_usage(
    input_tokens: Any,
    output_tokens: Any,
    cache_read: Any,
    cache_write: Any,
    reasoning: Any,
    strict: bool,
) -> tuple[int, int, int, int, int]:
    """An LLM call's token counts, checked like `token_count`, in the inclusive convention
    (`pricing.inclusive_counts` order: input, output, cache read, cache write, reasoning)."""
    plain = type(cache_read) is type(cache_write) is type(reasoning) is int
    if plain and not (cache_read or cache_write or reasoning):  # two counts to check
        return token_count(input_tokens, strict), token_count(output_tokens, strict), 0, 0, 0
    return inclusive_counts(
        token_count(input_tokens, strict),
        token_count(output_tokens, strict),
        token_count(cache_read, strict),
        token_count(cache_write, strict),
        token_count(reasoning, strict),
        strict=strict,
    )


_NO_COUNTS = (0, 0, 0, 0, 0)


class Session:
    """Use as a context manager (`with` or `async with`), or call `end()` yourself."""

    __slots__ = (
        "_flag_keys",
        "_flags",
        "_last_context_tokens",
        "_limits",
        "_limits_rev",
        "_loop_costs",
        "_low_conf_streak",
        "_rev",
        "_steps",
        "_token",
        "_usage",
        "approved_change",
        "consecutive_tool_calls",
        "cost_usd",
        "ended",
        "id",
        "input_text",
        "killed",
        "last_event",
        "loop",
        "loop_cost_usd",
        "otel_root",
        "outcome_reason",
        "outcome_value",
        "output_text",
        "principal",
        "retries",
        "runtime",
        "source",
        "spans",
        "started",
        "status",
        "stopped_reason",
        "tenant",
        "tokens_in",
        "tokens_out",
        "tool_calls",
        "trace_id",
        "unauthorized_attempts",
        "workflow",
    )

    def __init__(
        self,
        runtime: Runtime,
        session_id: str,
        workflow: str,
        principal: str,
        tenant: str | None,
        *,
        source: Literal["api", "otel"] = "api",
        approved_change: bool = False,
    ) -> None:
        now = time.time()
        self.runtime = runtime
        self.id = session_id
        self.workflow = workflow
        self.principal = principal
        self.tenant = tenant
        self.source: Literal["api", "otel"] = source
        self.approved_change = approved_change
        self.status: SessionStatus = "running"
        self.started = now
        self.last_event = now
        self.ended: float | None = None
        self.loop = 0  # LLM calls so far: each starts a loop
        self.tool_calls = 0
        self.consecutive_tool_calls = 0
        self.retries = 0
        self.unauthorized_attempts = 0
        self.tokens_in = 0
        self.tokens_out = 0
        self.cost_usd = 0.0
        self.loop_cost_usd = 0.0
        self.killed: KillInfo | None = None
        #: newest `spans_per_session` spans, oldest first
        self.spans: list[SpanRecord] = []
        self.stopped_reason: str | None = None  # a hard budget limit that was reached
        # made on first use: most sessions never flag, retry or report cache tokens
        self._flags: deque[Flag] | None = None
        self._flag_keys: set[str] | None = None
        self._steps: dict[int, int] | None = None
        self._loop_costs: list[LoopCost] | None = None  # in loop order
        self._usage: UsageSplit | None = None  # cache and reasoning tokens, cost split
        self._limits: Limits | None = None
        self._limits_rev = -1
        self._rev = 0
        self._low_conf_streak = 0
        self._last_context_tokens = 0
        self._token: Token[Session | None] | None = None
        self.outcome_value: Outcome | None = None  # reported, or decided when it ends
        self.outcome_reason: str | None = None
        self.input_text: str | None = None
        self.output_text: str | None = None
        self.trace_id: str | None = None
        #: the OpenTelemetry export of this session (API sessions, when export is on)
        self.otel_root: Any = None

    # -- containers made on first use ------------------------------------------------
    @property
    def flags(self) -> deque[Flag] | tuple[()]:
        """The newest flags (at most 50), oldest first."""
        return () if self._flags is None else self._flags

    @property
    def steps(self) -> dict[int, int]:
        """Calls per step, by the hash of its step key (tool + arguments), for retry
        counting: an int, not the key, so large arguments are not kept once more."""
        if self._steps is None:
            self._steps = {}
        return self._steps

    @property
    def loop_costs(self) -> list[LoopCost]:
        """Spend per loop, for the newest `spans_per_session` loops, oldest first."""
        return [] if self._loop_costs is None else list(self._loop_costs)

    @property
    def usage_split(self) -> UsageSplit:
        """Cache and reasoning tokens and the cost split, summed over the LLM calls."""
        return _NO_USAGE if self._usage is None else self._usage

    def _discard_flag_key(self, key: str) -> None:
        if self._flag_keys is not None:
            self._flag_keys.discard(key)

    # -- context manager -------------------------------------------------------------
    def __enter__(self) -> Session:
        self._token = current_session.set(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._reset_current()
        if exc is not None and self.outcome_value is None and self.ended is None:
            self.outcome_value, self.outcome_reason = _outcome_for(exc)
        self.end(_status_for(exc))

    async def __aenter__(self) -> Session:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def _reset_current(self) -> None:
        token, self._token = self._token, None
        if token is not None:
            try:
                current_session.reset(token)
            except ValueError:  # exited in another context than it was entered
                current_session.set(None)

    # -- what the agent calls --------------------------------------------------------
    def llm_call(
        self,
        model: str,
        input_tokens: int = 0,
        output_tokens: int = 0,
        *,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        reasoning_tokens: int = 0,
        provider: str | None = None,
        latency_ms: float | None = None,
        name: str | None = None,
        parent_id: str | None = None,
        count_usage: bool = True,
        enforce: bool = True,
    ) -> SpanRecord:
        """Record one LLM call; it starts a new loop. Raises if the session may not go on
        (`enforce=False` records a call that already happened, as OTel ingest does).

        `input_tokens` is the whole prompt, cache reads and writes included, and
        `output_tokens` the whole completion, reasoning included (OpenAI's and OpenTelemetry's
        convention; for Anthropic add its cache counts to `input_tokens`): docs/runtime.md."""
        if enforce:
            self.check()
        counts = (
            billed_usage(
                input_tokens,
                output_tokens,
                cache_read_tokens,
                cache_write_tokens,
                reasoning_tokens,
                enforce,
            )
            if count_usage
            else _NO_COUNTS
        )
        return self.record_llm(model, provider, counts, latency_ms, name, parent_id)

    def record_llm(
        self,
        model: str,
        provider: str | None,
        counts: tuple[int, int, int, int, int],
        latency_ms: float | None = None,
        name: str | None = None,
        parent_id: str | None = None,
    ) -> SpanRecord:
        """An LLM call that happened, its counts already checked (`billed_usage`): the one
        path both `llm_call` and OpenTelemetry take, so a span costs the same either way.
        Plain numbers throughout (no usage or cost objects): it runs on every LLM span."""
        rt = self.runtime
        now = time.time()
        self.loop += 1
        self.loop_cost_usd = 0.0
        tokens_in, tokens_out = counts[0], counts[1]
        parts = rt.pricer.split(model, provider, *counts)
        long_name = False
        if parts is None:
            cost = 0.0
            split = None
            long_name = too_long(model) or too_long(provider)
            if long_name:  # untrusted noise: kept short on the span, never priced or cached
                model, provider = shown(model), None if provider is None else shown(provider)
        else:
            cost = parts[0] + parts[1] + parts[2] + parts[3] + parts[4] + parts[5]
            split = array("d", parts)
        span = SpanRecord.llm(
            self.id,
            name or _chat_name(model),
            self.loop,
            now - (latency_ms or 0.0) / 1000,
            now,
            latency_ms,
            self.principal,
            model,
            provider,
            counts,
            cost,
            split,
            parent_id,
        )
        self.add_usage(tokens_in, tokens_out, cost)  # a new loop: its cost record is made here
        totals = self._usage
        if totals is None:
            totals = self._usage = UsageSplit()
        totals.add(counts, parts)
        self.record_span(span, publish=False)
        rt.stats.llm_calls_total += 1
        if long_name:
            self.flag(
                "unpriced",
                f"model or provider name longer than {MAX_NAME} characters ({model}); "
                "not priced, counted as $0",
                severity="warning",
                span_id=span.id,
                key="unpriced:too-long",
            )
        elif parts is None and tokens_in + tokens_out:
            self.flag(
                "unpriced",
                f"no price known for model {model}; counted as $0",
                severity="info",
                span_id=span.id,
                key=f"unpriced:{model}",
            )
        self.touch()
        rt.events.publish("span_ended", self, span=span)
        self.check_budgets()
        return span

    def record_span(self, span: SpanRecord, publish: bool = True) -> None:
        """A span has ended: keep it, export it (API sessions with export on), tell streams."""
        spans = self.spans
        if len(spans) >= self.runtime.config.spans_per_session:
            del spans[0]  # a list, not a deque: ~600 bytes less for a session of few spans
        spans.append(span)
        exporter = self.runtime.exporter
        if exporter is not None and self.source == "api":
            exporter.span_ended(self, span)
        if publish:
            self.touch()
            self.runtime.events.publish("span_ended", self, span=span)

    def tool_call(
        self,
        name: str,
        arguments: Any = None,
        *,
        version: str | None = None,
        parent_id: str | None = None,
    ) -> ToolCall:
        """Guard a tool call: `with s.tool_call(...)` runs the body only when allowed."""
        return _tool_call_type()(self, name, arguments, version=version, parent_id=parent_id)

    def outcome(self, outcome: str, reason: str | None = None) -> None:
        """Report how the task ended: resolved, partial, escalated, refused, unsafe or failed.

        The last report before the session ends is the one kept; a session that ends
        without one gets a derived outcome (docs/runtime.md). A value outside the list, or a
        report on an ended session of this process, raises at this call."""
        if outcome not in REPORTED_OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(REPORTED_OUTCOMES)}: {outcome!r}")
        if reason is not None and not isinstance(reason, str):
            raise ValueError(f"outcome reason must be text: {reason!r}")
        if self.ended is not None and self.source == "api":
            raise SessionEnded(f"session {self.id} has ended ({self.status}); outcome not changed")
        self.outcome_value = outcome  # type: ignore[assignment]
        self.outcome_reason = None if reason is None else one_line(reason, _REASON_CHARS)
        self.touch()
        self.runtime.events.publish("session_updated", self)

    def input(self, text: Any) -> None:
        """Record the task the session works on (after the retention rules and redaction)."""
        self.input_text = self.runtime.retention.text("input", text, self.redact_context)
        self.touch()

    def output(self, text: Any) -> None:
        """Record the session's final answer (after the retention rules and redaction)."""
        self.output_text = self.runtime.retention.text("output", text, self.redact_context)
        self.touch()

    def redact_context(self, tool: str | None = None) -> RedactContext:
        return RedactContext(
            self.runtime.agent_name, self.id, self.workflow, self.principal, self.tenant, tool
        )

    def human_input(self) -> None:
        """A person took part (a reply, a confirmation): the consecutive count starts over."""
        self.consecutive_tool_calls = 0
        self._discard_flag_key("consecutive")
        self.touch()

    def end(self, status: SessionStatus = "completed") -> None:
        if self.ended is not None:
            return
        if self.killed is not None:
            status = "killed"
        elif self.stopped_reason is not None and status in ("completed", "failed"):
            status = "stopped"
        self.status = status
        if self.outcome_value is None:
            self.outcome_value, self.outcome_reason = self._derived_outcome()
        self.ended = time.time()
        self.touch()
        rt = self.runtime
        if rt.exporter is not None and self.source == "api":
            rt.exporter.session_ended(self)
        rt._session_ended(self)
        if self.source == "otel" and rt._mapper is not None:
            rt._mapper.session_ended(self.id)  # the OTel tables forget it at once

    def reopen(self) -> bool:
        """A later run of this ended OTel conversation (a new trace, a new root agent span):
        the session is active again, so a kill reaches it and the run's end publishes
        `session_ended` again (the watcher's upsert then keeps the fuller record). Ended
        `completed` or `failed`, it runs again and that end decides its outcome anew;
        stopped by an operator or a budget (`killed`, `stopped`), it stays so: the guard
        refuses the run's tool calls, which are recorded. False when the runtime no longer
        holds it (evicted meanwhile): the caller starts a new session under the same id."""
        if self.ended is None or self.source != "otel":
            return False
        status = self.status if self.status in _OPERATOR_STOPS else "running"
        return self.runtime._session_reopened(self, status)

    def _derived_outcome(self) -> tuple[Outcome, str | None]:
        """No report and no exception: a stopped session failed its task; else unknown."""
        if self.killed is not None:
            return "failed", f"killed by {self.killed.operator}: {self.killed.reason or '-'}"
        if self.status == "stopped":
            return "failed", self.stopped_reason or "stopped"
        if self.status == "failed":
            return "failed", None
        return "unknown", None

    # -- guard helpers ---------------------------------------------------------------
    def check(self) -> None:
        """Refuse any further call of a killed, disabled or over-budget session."""
        if self.killed is not None:
            raise SessionKilled(f"session {self.id} was killed by {self.killed.operator}")
        if self.ended is not None and self.source == "api":
            raise SessionEnded(f"session {self.id} has ended ({self.status}); start a new one")
        disabled = self.runtime.disabled.get(self.workflow)
        if disabled is not None:
            if self.status != "stopped":
                self.status = "stopped"
                self.flag(
                    "workflow_disabled",
                    f"workflow {self.workflow} disabled by {disabled.operator}",
                    severity="critical",
                    key="disabled",
                )
            raise SessionKilled(f"workflow {self.workflow} is disabled")
        if self.stopped_reason is not None:
            raise BudgetExceeded(self.stopped_reason)

    def limits(self) -> Limits:
        book = self.runtime.budgets
        if self._limits is None or self._limits_rev != book.revision:
            self._limits = book.limits_for(self.workflow, self.id)
            self._limits_rev = book.revision
        return self._limits

    def add_usage(self, tokens_in: int, tokens_out: int, cost: float, tools: int = 0) -> None:
        self.tokens_in += tokens_in
        self.tokens_out += tokens_out
        self.cost_usd += cost
        self.loop_cost_usd += cost
        entry = self.loop_cost()
        entry.cost_usd += cost
        entry.tokens_in += tokens_in
        entry.tokens_out += tokens_out
        entry.tool_calls += tools
        stats = self.runtime.stats
        stats.tokens_in_total += tokens_in
        stats.tokens_out_total += tokens_out
        stats.cost_usd_total += cost

    def loop_cost(self) -> LoopCost:
        """The current loop's record (made on its first cost or tool call)."""
        costs = self._loop_costs
        if costs is None:
            entry = LoopCost(self.loop)
            self._loop_costs = [entry]  # never empty, so readers may take [-1]
            return entry
        last = costs[-1]
        if last.loop == self.loop:  # loops only grow: the current one is the last
            return last
        entry = LoopCost(self.loop)
        costs.append(entry)
        if len(costs) > self.runtime.config.spans_per_session:
            del costs[0]
        return entry

    def count_step(self, tool: str, arguments: Any) -> int:
        """Count a call of this step; returns how many times it was already tried."""
        key = hash(step_key(tool, arguments))  # salted per process: not chosen by the agent
        steps = self._steps
        if steps is None:
            steps = self._steps = {}
        seen = steps.get(key, 0)
        if seen == 0 and len(steps) >= _STEPS_KEPT:
            steps.clear()
        steps[key] = seen + 1
        if seen:
            self.retries += 1
        return seen

    def check_budgets(self) -> None:
        """Warn at the configured share of a limit; at the limit, stop at the next call."""
        limits = self.limits()
        if limits[0] is None and limits[1] is None and limits[2] is None and limits[4] is None:
            return  # nothing to measure (max_consecutive_tool_calls is the guard's)
        ratio = self.runtime.config.warn_ratio
        for field, used, limit in (
            ("max_cost_usd_session", self.cost_usd, limits.max_cost_usd_session),
            ("max_cost_usd_loop", self.loop_cost_usd, limits.max_cost_usd_loop),
            ("max_output_tokens", self.tokens_out, limits.max_output_tokens),
            ("max_tool_calls", self.tool_calls, limits.max_tool_calls),
        ):
            if limit is None or used < ratio * limit:
                continue
            shown = f"${used:.4f} of ${limit:.2f}" if "usd" in field else f"{used} of {limit}"
            hard = used >= limit and field != "max_tool_calls"
            if hard and self.stopped_reason is None:
                self.stopped_reason = f"{field} reached: {shown}"
                self.flag(
                    "budget_exceeded",
                    f"{field} reached ({shown}); the session stops",
                    severity="critical",
                    key=f"exceeded:{field}:{self.loop}",
                )
            elif not hard:
                self.flag(
                    "budget_warning",
                    f"{field} at {used / limit:.0%} ({shown})",
                    key=f"warn:{field}" + (f":{self.loop}" if "loop" in field else ""),
                )

    def stop_for_budget(self, reason: str, span_id: str | None = None) -> BudgetExceeded:
        if self.stopped_reason is None:
            self.stopped_reason = reason
        self.flag(
            "budget_exceeded",
            reason,
            severity="critical",
            span_id=span_id,
            key=f"exceeded:{reason}",
        )
        return BudgetExceeded(reason)

    def flag(
        self,
        kind: FlagKind,
        message: str,
        *,
        severity: Severity = "warning",
        span_id: str | None = None,
        key: str | None = None,
    ) -> Flag | None:
        """Raise a detection now, as an event; `key` makes it once-only for this session."""
        if key is not None:
            if self._flag_keys is None:
                self._flag_keys = set()
            elif key in self._flag_keys:
                return None
            self._flag_keys.add(key)
        flag = Flag(
            kind=kind, severity=severity, at=utc(time.time()), message=message, span_id=span_id
        )
        if self._flags is None:
            self._flags = deque(maxlen=FLAGS_KEPT)  # older ones stay countable in /metrics
        self._flags.append(flag)
        self.runtime.stats.flags[kind] += 1
        self.touch()
        self.runtime.events.publish("flag", self, flag=flag)
        return flag

    def note_retrieval(self, confidence: float, context_tokens: int, span_id: str) -> None:
        """Low confidence while the context keeps growing: the agent is flailing."""
        config = self.runtime.config
        growing = context_tokens > self._last_context_tokens
        self._last_context_tokens = context_tokens
        if confidence < config.low_confidence and growing:
            self._low_conf_streak += 1
        else:
            self._low_conf_streak = 0
            self._discard_flag_key("low_conf")
        if self._low_conf_streak >= config.low_confidence_streak:
            self.flag(
                "low_confidence_retrieval",
                f"{self._low_conf_streak} retrievals below confidence {config.low_confidence} "
                f"while context grew to {context_tokens} tokens",
                span_id=span_id,
                key="low_conf",
            )

    def touch(self) -> None:
        self.last_event = time.time()
        self._rev += 1

    # -- wire views ------------------------------------------------------------------
    def summary(self) -> SessionSummary:
        """The wire summary; the same object until the session changes, while the runtime's
        SummaryCache still holds it."""
        return self.runtime.summaries.get(self)

    def _summary_fields(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "agent": self.runtime.agent_name,
            "workflow": self.workflow,
            "principal": self.principal,
            "tenant": self.tenant,
            "status": self.status,
            "started_at": utc(self.started),
            "last_event_at": utc(self.last_event),
            "ended_at": None if self.ended is None else utc(self.ended),
            "loops": self.loop,
            "tool_calls": self.tool_calls,
            "consecutive_tool_calls": self.consecutive_tool_calls,
            "retries": self.retries,
            "unauthorized_attempts": self.unauthorized_attempts,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "cost_usd": round(self.cost_usd, 9),
            "loop_cost_usd": round(self.loop_cost_usd, 9),
            "budget": self.limits().to_budgets(),
            "flags": list(self.flags),
            "killed": self.killed,
            "source": self.source,
            "outcome": self.outcome_value,
        }

    def detail(self) -> SessionDetail:
        return SessionDetail(
            **self._summary_fields(),
            spans=[span.to_model() for span in list(self.spans)],
            loop_costs=[
                LoopCostModel(
                    loop=v.loop,
                    cost_usd=round(v.cost_usd, 9),
                    tokens_in=v.tokens_in,
                    tokens_out=v.tokens_out,
                    tool_calls=v.tool_calls,
                )
                for v in self.loop_costs
            ],
            outcome_reason=self.outcome_reason,
            tokens_cache_read=self.usage_split.cache_read,
            tokens_cache_write=self.usage_split.cache_write,
            tokens_reasoning=self.usage_split.reasoning,
            cost_split=cost_split(self.usage_split.cost) if self.usage_split.priced else None,
            input=self.input_text,
            output=self.output_text,
            trace_id=self.trace_id,
        )


def _outcome_for(exc: BaseException) -> tuple[Outcome, str]:
    """An exception left the `with` block before the agent reported an outcome: a policy
    refusal the agent did not handle is `refused`; a kill, a budget, anything else `failed`."""
    why = one_line(f"{type(exc).__name__}: {exc}", _REASON_CHARS)
    return ("refused" if isinstance(exc, PolicyDenied) else "failed"), why


def _status_for(exc: BaseException | None) -> SessionStatus:
    if exc is None:
        return "completed"
    if isinstance(exc, SessionKilled):
        return "stopped"
    if isinstance(exc, BudgetExceeded):
        return "stopped"
    if isinstance(exc, PolicyDenied | GuardError):
        return "failed"
    return "failed"
