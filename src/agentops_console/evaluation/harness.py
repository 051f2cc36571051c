"""Run a suite against a target on the real runtime, configured as the release under test.

One `Runtime` per run: the release's Cedar policy (its `@max_*` budgets included), its tool
catalog as `ToolSpec`s, its version. Every case is one guarded session; a case's target
runs concurrently with others (`jobs`), in a worker thread (sync targets) or on the event
loop (async ones), under a timeout. A crash or a timeout fails that case only: a timed-out
session is killed, so a sync target stops at its next guarded call.

Human checkpoints are answered by the eval approver (a thread watching the runtime's
events): it approves a checkpoint on a tool the case lists in `needs_approval` and denies
every other one, as a reviewer who knows the ticket would; each answer is counted on the
case and kept on the session record.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import inspect
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..protocol.models import AgentInfo, Approval, ApprovalDecision
from ..protocol.records import SessionRecord, build_record
from ..protocol.text import one_line
from ..runtime import Runtime, RuntimeConfig, Session, ToolSpec
from .metrics import summarize
from .scoring import CaseResult, Scorer, load_scorer, score
from .suite import Case, Suite
from .tools import LiveTools, Toolbox, ToolProvider

#: A case's crash, as its result records it.
CRASH_CHARS = 300

if TYPE_CHECKING:
    from ..runtime.approvals import PendingApproval
    from .otel_events import EvaluationEvents

APPROVER = "eval-approver"
_TOOL_KEYS = ("read_only", "customer_facing", "category", "corpus", "region")


class TargetError(ValueError):
    """The target cannot be imported or is not callable (one line)."""


@dataclass(frozen=True, slots=True)
class ReleaseUnderTest:
    """What the runtime is configured with: the release's policy, catalog and version."""

    agent: str
    version: str
    policy: str
    catalog: dict[str, dict[str, Any]]
    tenant: str | None = None
    content_hash: str | None = None
    max_retries: int | None = None

    def tool_specs(self) -> list[ToolSpec]:
        return [
            ToolSpec(name, **{k: attrs[k] for k in _TOOL_KEYS if k in attrs})
            for name, attrs in sorted(self.catalog.items())
        ]


@dataclass(slots=True)
class CaseContext:
    """What a target receives beside the session: the case and its guarded tools."""

    case: Case
    tools: Toolbox
    seed: int

    @property
    def id(self) -> str:
        return self.case.id

    @property
    def input(self) -> str:
        return self.case.input

    @property
    def category(self) -> str:
        return self.case.category

    @property
    def metadata(self) -> dict[str, Any]:
        return self.case.metadata


Target = Callable[[CaseContext, Session], Any]


def load_target(ref: str) -> Target:
    """`package.module:function`, sync or async; TargetError in one line otherwise."""
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise TargetError(f"target {ref!r} must be package.module:function")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import-time error of the team's code is theirs to see
        raise TargetError(f"cannot import target module {module_name} ({exc})") from None
    found = getattr(module, attr, None)
    if found is None:
        raise TargetError(f"target module {module_name} has no {attr}")
    if not callable(found):
        raise TargetError(f"target {ref} is not callable")
    return found  # type: ignore[no-any-return]


@dataclass(slots=True)
class EvalRun:
    suite: Suite
    release: ReleaseUnderTest
    target: str
    results: list[CaseResult]
    records: list[SessionRecord]
    started_at: float
    finished_at: float
    run_id: str
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return self.finished_at - self.started_at


class Approver:
    """Answers checkpoints the way the case says a reviewer would (see module docstring);
    replay swaps in one that answers as the recording did (`verdict`)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.cases: dict[str, Case] = {}
        self.decided: dict[str, list[Approval]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="agentops-eval-approver")
        self._thread.daemon = True

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _loop(self) -> None:
        seq = self.rt.events.last_seq
        while not self._stop.is_set():
            batch = self.rt.events.wait_after(seq, 0.1, limit=10_000)
            if batch:
                seq = batch[-1].seq
            if any(r.type == "approval_requested" for r in batch) or not batch:
                for pending in self.rt.approvals.pending():
                    self._decide(pending)

    def verdict(self, case: Case, pending: PendingApproval) -> tuple[bool, str]:
        """Approve or deny, and why."""
        if pending.tool in case.expect.needs_approval:
            return True, f"case {case.id} expects a checkpoint on {pending.tool}"
        return False, f"case {case.id} does not expect {pending.tool} here"

    def _decide(self, pending: PendingApproval) -> None:
        case = self.cases.get(pending.session_id)
        if case is None:
            return
        approve, reason = self.verdict(case, pending)
        decision = ApprovalDecision(
            decision="approve" if approve else "deny", operator=APPROVER, reason=reason
        )
        with contextlib.suppress(ValueError):  # expired or answered meanwhile
            decided = self.rt.decide_approval(pending.id, decision)
            if decided is not None:
                self.decided.setdefault(pending.session_id, []).append(decided)


class Harness:
    def __init__(
        self,
        suite: Suite,
        target: Target,
        release: ReleaseUnderTest,
        *,
        target_ref: str = "",
        jobs: int = 4,
        timeout_s: float = 30.0,
        seed: int = 7,
        provider: ToolProvider | None = None,
        on_case: Callable[[CaseResult], None] | None = None,
        approver: Callable[[Runtime], Approver] = Approver,
        tracer_provider: Any = None,
        case_events: bool = True,
    ) -> None:
        if jobs < 1:
            raise ValueError("jobs must be at least 1")
        if not timeout_s > 0:
            raise ValueError("timeout must be a positive number of seconds")
        self.suite = suite
        self.target = target
        self.target_ref = target_ref
        self.release = release
        self.jobs = jobs
        self.timeout_s = timeout_s
        self.seed = seed
        self.provider = provider or LiveTools()
        self.on_case = on_case
        self.approver = approver
        self.is_async = inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(
            getattr(target, "__call__", None)  # noqa: B004 - a callable object's method
        )
        self.scorers: dict[str, Scorer] = {ref: load_scorer(ref) for ref in suite.header.scorers}
        self.run_id = uuid.uuid4().hex[:8]
        #: with a TracerProvider: sessions exported as GenAI spans, results as events
        self.tracer_provider = tracer_provider
        self.case_events = case_events
        self.events: EvaluationEvents | None = None
        if tracer_provider is not None:
            from .otel_events import EvaluationEvents

            self.events = EvaluationEvents(
                tracer_provider, f"ev-{self.run_id}-", suite=suite.header.name
            )
        self.runtime = self._runtime()

    def _runtime(self) -> Runtime:
        config = RuntimeConfig()
        config = dataclasses.replace(
            config,
            approval_timeout_s=self.timeout_s + 5,
            finished_sessions=max(1000, len(self.suite.cases) + 16),
        )
        if self.release.max_retries is not None:
            config.max_retries = self.release.max_retries
        return Runtime(
            self.release.agent,
            self.release.version,
            tenant=self.release.tenant,
            token=secrets.token_urlsafe(24),  # never served: the harness starts no endpoint
            policy=self.release.policy,
            policy_version=self.release.version,
            config=config,
            tools=self.release.tool_specs(),
            tracer_provider=self.tracer_provider,
            export_otel=False,
        )

    # -- running -----------------------------------------------------------------------
    def run(self) -> EvalRun:
        started = time.time()
        approver = self.approver(self.runtime)
        approver.start()
        pool = ThreadPoolExecutor(self.jobs + 4, thread_name_prefix="agentops-eval")
        try:
            results, records = asyncio.run(self._main(approver, pool))
        finally:
            approver.stop()
            pool.shutdown(wait=False, cancel_futures=True)
            self.runtime.stop()
        run = EvalRun(
            self.suite,
            self.release,
            self.target_ref,
            results,
            records,
            started,
            time.time(),
            self.run_id,
        )
        run.summary = summarize(results, self.suite.header.red_team)
        if self.events is not None and self.case_events:
            for result in results:
                if result.session_id is not None:
                    self.events.case(result.session_id, result)
            self.events.close()
        return run

    async def _main(
        self, approver: Approver, pool: ThreadPoolExecutor
    ) -> tuple[list[CaseResult], list[SessionRecord]]:
        gate = asyncio.Semaphore(self.jobs)
        info = self.runtime.agent_info()

        async def one(index: int, case: Case) -> tuple[CaseResult, SessionRecord]:
            async with gate:
                return await self._case(index, case, approver, pool, info)

        done = await asyncio.gather(*(one(i, c) for i, c in enumerate(self.suite.cases)))
        return [r for r, _ in done], [rec for _, rec in done]

    async def _case(
        self,
        index: int,
        case: Case,
        approver: Approver,
        pool: ThreadPoolExecutor,
        info: AgentInfo,
    ) -> tuple[CaseResult, SessionRecord]:
        rt = self.runtime
        t0 = time.perf_counter()
        session = rt.session(
            case.workflow_name,
            case.principal,
            tenant=case.tenant,
            session_id=f"ev-{self.run_id}-{index:05d}",
            approved_change=case.approved_change,
        )
        approver.cases[session.id] = case
        ctx = CaseContext(case, Toolbox(session, case, self.provider), self.seed)
        answer: str | None = None
        error: str | None = None
        try:
            if self.is_async:
                answer = await asyncio.wait_for(self._run_async(ctx, session), self.timeout_s)
            else:
                future = pool.submit(self._run_sync, ctx, session)
                answer = await asyncio.wait_for(asyncio.wrap_future(future), self.timeout_s)
        except TimeoutError:
            error = f"timeout after {self.timeout_s:g} s"
            rt.kill(session.id, "eval-harness", error)  # a sync target stops at its next call
        except Exception as exc:
            error = "crash: " + one_line(f"{type(exc).__name__}: {exc}", CRASH_CHARS)
        if session.ended is None:
            session.end("failed")
        decided = approver.decided.pop(session.id, [])
        approver.cases.pop(session.id, None)
        record = build_record(session.detail(), info, decided)
        counts: dict[str, int] = {}
        for a in decided:
            counts[a.status] = counts.get(a.status, 0) + 1
        result = score(
            case,
            record,
            answer,
            self.release.catalog,
            self.scorers,
            approvals=counts,
            error=error,
        )
        result.duration_s = time.perf_counter() - t0
        if self.on_case is not None:
            self.on_case(result)
        return result, record

    def _run_sync(self, ctx: CaseContext, session: Session) -> str | None:
        with session as s:
            s.input(ctx.case.input)
            try:
                returned = self.target(ctx, s)
            except BaseException as exc:
                _report_crash(s, exc)
                raise
            return _finish(s, returned)

    async def _run_async(self, ctx: CaseContext, session: Session) -> str | None:
        async with session as s:
            s.input(ctx.case.input)
            try:
                returned = await self.target(ctx, s)
            except BaseException as exc:
                _report_crash(s, exc)
                raise
            return _finish(s, returned)


def _report_crash(s: Session, exc: BaseException) -> None:
    if s.ended is None and s.killed is None:
        with contextlib.suppress(Exception):
            s.outcome("failed", f"crash: {type(exc).__name__}: {exc}")


def _finish(s: Session, returned: Any) -> str | None:
    """The target's answer: a string, or {"answer": ..., "outcome": ...}; an outcome the
    target reported on the session wins over one it returned."""
    text: Any = returned
    outcome: Any = None
    if isinstance(returned, dict):
        text, outcome = returned.get("answer"), returned.get("outcome")
    if outcome is not None and s.outcome_value is None:
        s.outcome(str(outcome))
    if text is None:
        return None
    s.output(str(text))
    return str(text)


def run_suite(
    suite: Suite,
    target: Target,
    release: ReleaseUnderTest,
    *,
    target_ref: str = "",
    jobs: int = 4,
    timeout_s: float = 30.0,
    seed: int = 7,
    provider: ToolProvider | None = None,
    on_case: Callable[[CaseResult], None] | None = None,
    tracer_provider: Any = None,
) -> EvalRun:
    """Run every case; never raises for a case's failure (see Harness). With a
    `tracer_provider`, sessions and results go out as OpenTelemetry (otel_events)."""
    return Harness(
        suite,
        target,
        release,
        target_ref=target_ref,
        jobs=jobs,
        timeout_s=timeout_s,
        seed=seed,
        provider=provider,
        on_case=on_case,
        tracer_provider=tracer_provider,
    ).run()


def passed_share(results: Sequence[CaseResult]) -> float:
    return sum(r.passed for r in results) / len(results) if results else 0.0
