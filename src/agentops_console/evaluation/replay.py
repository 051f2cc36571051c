"""Replay recorded production sessions through a candidate, with no live tool called.

Each recorded session (`agentops.record/1`, from a JSONL export or the records DB) becomes a
case: its recorded input, workflow, principal and tenant. The candidate runs on the real
runtime configured as the release under test (its Cedar policy, budgets, catalog), every
tool call guarded as in production; only the answers differ:

- **Tool answers** come from the recording (`ReplayTools`). Matching rule, per session: the
  first unused recorded call of the same tool with the same arguments (canonical JSON:
  sorted keys, so key order does not matter), in recorded order; failing that, for a
  read-only tool of the release catalog only, the first unused recorded call of that tool
  in order (counted as drift: `loose`). A write never gets another call's answer. A call
  the recording cannot answer raises `ToolUnavailable` ("... unavailable in replay ..."),
  which the agent sees like any tool error, and which counts as drift. A recorded call
  that failed fails again with its recorded error.
- **Human checkpoints** are answered as the recording answered them (`ReplayApprover`): a
  checkpoint on a tool whose recorded call a person approved is approved; one the person
  denied, or let expire, is denied; one the recording never asked (a new checkpoint) is
  denied, since nobody was asked: a new policy decision.

Per session the diff against the recording: tool sequence (and arguments), policy
decisions, outcome, cost. A **material regression** is any of: an outcome that got worse
(`OUTCOME_ORDER`), a new denying policy decision (deny, rejected, expired) on a tool, more
unauthorized attempts, cost above `cost_multiple` times the recorded cost.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..protocol.records import SessionRecord, SpanRecord
from .harness import Approver, EvalRun, Harness, ReleaseUnderTest, Target
from .metrics import rate
from .suite import Case, Suite, SuiteHeader
from .tools import ToolImpl, ToolUnavailable

if TYPE_CHECKING:
    from ..runtime import Runtime
    from ..runtime.approvals import PendingApproval

#: Better first. `unknown` (no outcome reported) is not ranked: a change to or from it is
#: drift, never a regression, since nothing says which is better.
OUTCOME_ORDER: tuple[str, ...] = ("resolved", "partial", "escalated", "refused", "failed", "unsafe")
_RANK = {name: i for i, name in enumerate(OUTCOME_ORDER)}
#: Span kinds of guarded calls (a retrieval is a tool call on a corpus).
CALL_KINDS = frozenset({"tool", "retrieval"})
#: Policy decisions that stopped a tool call.
DENYING = frozenset({"deny", "rejected", "expired"})
UNAVAILABLE = "unavailable in replay"
DEFAULT_COST_MULTIPLE = 2.0
#: Sessions the harness itself made (`ev-...`): never production traffic.
EVAL_PREFIX = "ev-"
_BAD_ID = re.compile(r"[^A-Za-z0-9._:-]")


class ReplayError(ValueError):
    """A recorded set that cannot be replayed (one line)."""


class RecordedToolError(RuntimeError):
    """The recorded call failed; replay fails it again with the recorded error."""


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _ran(span: SpanRecord) -> bool:
    """A recorded tool call whose body ran (its answer or error is in the recording)."""
    return (
        span.kind in CALL_KINDS
        and span.tool_name is not None
        and span.outcome in ("ok", "error")
        and span.policy_decision not in DENYING
    )


# -- the recorded set ----------------------------------------------------------------------
@dataclass(slots=True)
class ReplaySet:
    """The sessions to replay, in start order, and the hash the result is bound to."""

    records: list[SessionRecord]
    source: str
    skipped: list[tuple[str, str]] = field(default_factory=list)
    sha256: str = ""

    def __post_init__(self) -> None:
        if not self.sha256:
            digest = hashlib.sha256()
            for record in self.records:
                digest.update(record.model_dump_json().encode())
                digest.update(b"\n")
            self.sha256 = digest.hexdigest()


def select(
    records: Iterable[SessionRecord], source: str, *, agent: str, version: str | None = None
) -> ReplaySet:
    """The agent's (and version's) sessions; ended sessions with a recorded input only
    (the rest are listed as skipped: nothing to feed the candidate, or still running)."""
    chosen: list[SessionRecord] = []
    skipped: list[tuple[str, str]] = []
    for record in records:
        if record.agent != agent or (version is not None and record.agent_version != version):
            continue
        if record.session_id.startswith(EVAL_PREFIX):
            continue
        if not record.final:
            skipped.append((record.session_id, "still running when recorded"))
        elif record.input is None:
            skipped.append((record.session_id, "no recorded input"))
        else:
            chosen.append(record)
    chosen.sort(key=lambda r: (r.started_at, r.session_id))
    return ReplaySet(chosen, source, skipped)


def case_for(record: SessionRecord, index: int) -> Case:
    """The case replay feeds the candidate: the recorded input, workflow, principal, tenant.
    `approved_change` is not in agentops.record/1, so it is false."""
    case_id = _BAD_ID.sub("_", record.session_id)[:200] or f"s{index}"
    if not case_id[0].isalnum():
        case_id = f"s{case_id}"[:200]
    return Case(
        id=case_id,
        category=_BAD_ID.sub("_", record.workflow)[:200] or "replay",
        input=record.input or "",
        workflow=record.workflow,
        principal=record.principal,
        tenant=record.tenant,
        metadata={"replay_of": record.session_id},
    )


# -- answers from the recording ------------------------------------------------------------
class ReplayTools:
    """The tool-answer provider of a replay: the recording answers, never a live tool."""

    def __init__(self, recordings: dict[str, SessionRecord], catalog: dict[str, Any]) -> None:
        self.recordings = recordings
        self.read_only = {n for n, a in catalog.items() if a.get("read_only") is True}
        self._used: dict[str, set[int]] = {}
        self.loose: Counter[str] = Counter()
        self._lock = threading.Lock()

    def answer(self, case: Case, tool: str, arguments: Any, run: ToolImpl | None) -> Any:
        recorded = self.recordings.get(case.id)
        spans = recorded.spans if recorded is not None else []
        with self._lock:
            used = self._used.setdefault(case.id, set())
            wanted = canonical(arguments)
            found = next(
                (
                    i
                    for i, s in enumerate(spans)
                    if i not in used
                    and _ran(s)
                    and s.tool_name == tool
                    and canonical(s.arguments) == wanted
                ),
                None,
            )
            if found is None and tool in self.read_only:
                found = next(
                    (
                        i
                        for i, s in enumerate(spans)
                        if i not in used and _ran(s) and s.tool_name == tool
                    ),
                    None,
                )
                if found is not None:
                    self.loose[case.id] += 1
            if found is None:
                raise ToolUnavailable(
                    f"{tool} is {UNAVAILABLE}: the recording has no answer for this call"
                )
            used.add(found)
        span = spans[found]
        if span.outcome == "error":
            raise RecordedToolError(span.error or f"{tool} failed in the recording")
        return span.tool_output


class ReplayApprover(Approver):
    """Answers each checkpoint as the recording did (see the module docstring)."""

    def __init__(self, rt: Runtime, recordings: dict[str, SessionRecord]) -> None:
        super().__init__(rt)
        self.recordings = recordings

    def verdict(self, case: Case, pending: PendingApproval) -> tuple[bool, str]:
        recorded = self.recordings.get(case.id)
        spans = recorded.spans if recorded is not None else []
        answered = [
            s
            for s in spans
            if s.kind in CALL_KINDS and s.tool_name == pending.tool and s.human_override is not None
        ]
        wanted = canonical(pending.arguments)
        same = [s for s in answered if canonical(s.arguments) == wanted] or answered
        if not same:
            return False, f"replay: nobody was asked about {pending.tool} in the recording"
        override = same[0].human_override
        assert override is not None
        who = override.by or "a person"
        if override.decision == "approved":
            return True, f"replay: approved by {who} in the recording"
        return False, f"replay: {override.decision} ({who}) in the recording"


# -- the diff ------------------------------------------------------------------------------
@dataclass(slots=True)
class SessionDiff:
    session_id: str
    replayed_as: str
    recorded_outcome: str
    outcome: str
    recorded_tools: list[str]
    tools: list[str]
    recorded_cost_usd: float
    cost_usd: float
    #: material regressions, e.g. "outcome:escalated->refused", "policy:unlock_account:rejected"
    regressions: list[str] = field(default_factory=list)
    #: differences that are not regressions by themselves
    drift: list[str] = field(default_factory=list)

    @property
    def material(self) -> bool:
        return bool(self.regressions)

    @property
    def identical(self) -> bool:
        return not self.regressions and not self.drift

    def as_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "replayed_as": self.replayed_as,
            "outcome": [self.recorded_outcome, self.outcome],
            "tools": [self.recorded_tools, self.tools],
            "cost_usd": [round(self.recorded_cost_usd, 6), round(self.cost_usd, 6)],
            "regressions": self.regressions,
            "drift": self.drift,
        }


def _tool_spans(record: SessionRecord) -> list[SpanRecord]:
    return [s for s in record.spans if s.kind in CALL_KINDS and s.tool_name is not None]


def _denials(spans: Sequence[SpanRecord]) -> Counter[tuple[str, str]]:
    return Counter(
        (s.tool_name or "", s.policy_decision or "") for s in spans if s.policy_decision in DENYING
    )


def diff_session(
    recorded: SessionRecord,
    candidate: SessionRecord,
    *,
    cost_multiple: float = DEFAULT_COST_MULTIPLE,
    loose: int = 0,
) -> SessionDiff:
    before, after = _tool_spans(recorded), _tool_spans(candidate)
    out = SessionDiff(
        session_id=recorded.session_id,
        replayed_as=candidate.session_id,
        recorded_outcome=recorded.final_outcome,
        outcome=candidate.final_outcome,
        recorded_tools=[s.tool_name or "" for s in before],
        tools=[s.tool_name or "" for s in after],
        recorded_cost_usd=recorded.cost_usd,
        cost_usd=candidate.cost_usd,
    )
    was, now = _RANK.get(recorded.final_outcome), _RANK.get(candidate.final_outcome)
    change = f"{recorded.final_outcome}->{candidate.final_outcome}"
    if was is not None and now is not None and now > was:
        out.regressions.append(f"outcome:{change}")
    elif recorded.final_outcome != candidate.final_outcome:
        out.drift.append(f"outcome:{change}")
    for (tool, decision), count in (_denials(after) - _denials(before)).items():
        out.regressions += [f"policy:{tool}:{decision}"] * count
    if candidate.counters.unauthorized_attempts > recorded.counters.unauthorized_attempts:
        out.regressions.append("unauthorized_attempt")
    if recorded.cost_usd > 0 and candidate.cost_usd > cost_multiple * recorded.cost_usd:
        out.regressions.append(f"cost>{cost_multiple:g}x")
    if out.tools != out.recorded_tools:
        out.drift.append("tools")
    elif [canonical(s.arguments) for s in before] != [canonical(s.arguments) for s in after]:
        out.drift.append("arguments")
    unavailable = [s.tool_name for s in after if s.error is not None and UNAVAILABLE in s.error]
    out.drift += [f"unavailable:{tool}" for tool in unavailable]
    if loose:
        out.drift.append("loose_match")
    decisions_before = [s.policy_decision for s in before]
    if out.tools == out.recorded_tools and decisions_before != [s.policy_decision for s in after]:
        out.drift.append("policy_decisions")
    return out


def summarize_replay(diffs: Sequence[SessionDiff], skipped: int) -> dict[str, Any]:
    """The headline metrics (under "suite", where the gate reads metrics) and the taxonomy."""
    n = len(diffs)
    material = sum(d.material for d in diffs)
    drifted = sum(bool(d.drift) for d in diffs)
    per_1000 = rate(material, n).as_dict()
    for key in ("value", "low", "high"):
        if per_1000[key] is not None:
            per_1000[key] = round(per_1000[key] * 1000, 3)
    per_1000["unit"] = "per_1000"
    taxonomy: Counter[str] = Counter()
    for d in diffs:
        taxonomy.update(set(d.regressions))
        taxonomy.update({f"drift:{x}" for x in d.drift})
    transitions = Counter(
        f"{d.recorded_outcome}->{d.outcome}" for d in diffs if d.recorded_outcome != d.outcome
    )
    return {
        "cases": n,
        "passed": n - material,
        "skipped": skipped,
        "identical": sum(d.identical for d in diffs),
        "drifted": drifted,
        "material": material,
        "recorded_cost_usd": round(sum(d.recorded_cost_usd for d in diffs), 6),
        "cost_usd": round(sum(d.cost_usd for d in diffs), 6),
        "suite": {
            "material_regressions_per_1000": per_1000,
            "drift_rate": rate(drifted, n).as_dict(),
        },
        "taxonomy": dict(taxonomy.most_common()),
        "outcome_changes": dict(transitions.most_common()),
    }


# -- running -------------------------------------------------------------------------------
@dataclass(slots=True)
class ReplayRun:
    replay_set: ReplaySet
    run: EvalRun
    diffs: list[SessionDiff]
    cost_multiple: float
    summary: dict[str, Any]


def run_replay(
    replay_set: ReplaySet,
    target: Target,
    release: ReleaseUnderTest,
    *,
    target_ref: str = "",
    jobs: int = 4,
    timeout_s: float = 30.0,
    seed: int = 7,
    cost_multiple: float = DEFAULT_COST_MULTIPLE,
    tracer_provider: Any = None,
) -> ReplayRun:
    """Every recorded session through the candidate; never raises for one session's failure."""
    if not replay_set.records:
        raise ReplayError(f"{replay_set.source}: no recorded session to replay")
    cases = [case_for(r, i) for i, r in enumerate(replay_set.records)]
    seen: set[str] = set()
    for i, case in enumerate(cases):  # two agents' sessions may share an id: keep cases apart
        if case.id in seen:
            cases[i] = case.model_copy(update={"id": f"{case.id}.{i}"})
        seen.add(cases[i].id)
    by_case = {c.id: r for c, r in zip(cases, replay_set.records, strict=True)}
    suite = Suite(
        header=SuiteHeader(name=f"replay:{Path(replay_set.source).name}", agent=release.agent),
        cases=tuple(cases),
        path=Path(replay_set.source),
        sha256=replay_set.sha256,
        lines={},
    )
    provider = ReplayTools(by_case, release.catalog)

    def approver(rt: Runtime) -> Approver:
        return ReplayApprover(rt, by_case)

    harness = Harness(
        suite,
        target,
        release,
        target_ref=target_ref,
        jobs=jobs,
        timeout_s=timeout_s,
        seed=seed,
        provider=provider,
        approver=approver,
        tracer_provider=tracer_provider,
        case_events=False,  # a replayed session has no expectations: its diff is the result
    )
    run = harness.run()
    diffs = [
        diff_session(
            by_case[case.id], record, cost_multiple=cost_multiple, loose=provider.loose[case.id]
        )
        for case, record in zip(cases, run.records, strict=True)
    ]
    if harness.events is not None:
        for diff in diffs:
            harness.events.replay(diff.replayed_as, diff)
        harness.events.close()
    summary = summarize_replay(diffs, len(replay_set.skipped))
    return ReplayRun(replay_set, run, diffs, cost_multiple, summary)
