"""The release gate: every reason a release may not go live, or none.

Sign-offs (every required role approved, fresh and unexpired) and agreement between the
answers and the policy: question 1's tools against what the policy allows without
approval, question 2's data sources against the corpora the policy lets tools read,
question 3's budgets against the policy's @max_* annotations and stop conditions, and
question 4's runbook and rollback target. When the rubric has an `[evaluation]` table,
also a fresh evaluation result that meets its thresholds (docs/evaluation.md).
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .db import GovernanceDB
from .errors import GovernanceError
from .policy_facts import PolicyFacts
from .releases import Release, RoleState, role_states
from .rubric import AgentEvaluation, Rubric, Threshold, answer_problems, show_value
from .runbooks import list_runbooks

#: `rollback_to` for a first release: there is nothing earlier, so roll back by disabling.
NO_EARLIER_RELEASE = "disable"


@dataclass(frozen=True, slots=True)
class Evidence:
    """A stored evaluation result (docs/evaluation.md) as the gate reads it."""

    id: int
    kind: str
    suite_name: str
    suite_path: str
    suite_sha256: str
    content_hash: str
    target: str
    cases: int
    passed: int
    metrics: dict[str, Any]
    finished_at: str
    recorded_by: str

    def metric(self, name: str) -> dict[str, Any] | None:
        found = self.metrics.get("suite", {}).get(name)
        return found if isinstance(found, dict) else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "suite": self.suite_name,
            "suite_path": self.suite_path,
            "suite_sha256": self.suite_sha256,
            "content_hash": self.content_hash,
            "target": self.target,
            "cases": self.cases,
            "passed": self.passed,
            "finished_at": self.finished_at,
            "recorded_by": self.recorded_by,
            "metrics": self.metrics.get("suite", {}),
            "taxonomy": self.metrics.get("taxonomy", {}),
        }


@dataclass(frozen=True, slots=True)
class GateResult:
    release: Release
    reasons: tuple[str, ...]
    roles: tuple[RoleState, ...]
    facts: PolicyFacts | None = None
    notes: tuple[str, ...] = field(default=())
    evidence: Evidence | None = None
    #: per threshold: metric, threshold, measured value (text), status (pass, fail, ...)
    thresholds: tuple[dict[str, str], ...] = field(default=())
    #: replay and canary results the gate read (docs/evaluation.md)
    replays: tuple[Evidence, ...] = field(default=())

    @property
    def ready(self) -> bool:
        return not self.reasons

    def as_dict(self) -> dict[str, Any]:
        return {
            "agent": self.release.agent,
            "version": self.release.version,
            "content_hash": self.release.content_hash,
            "ready": self.ready,
            "reasons": list(self.reasons),
            "notes": list(self.notes),
            "roles": [r.as_dict() for r in self.roles],
            "evaluation": {
                "evidence": self.evidence.as_dict() if self.evidence else None,
                "thresholds": list(self.thresholds),
                "replays": [e.as_dict() for e in self.replays],
            },
        }


def _role_reasons(states: list[RoleState]) -> list[str]:
    out: list[str] = []
    for s in states:
        who = s.signoff.person if s.signoff else s.owner
        if s.status == "no-owner":
            out.append(f"{s.role}: no registered owner (agentops owner set ... {s.role} PERSON)")
        elif s.status == "unsigned":
            out.append(f"{s.role}: not signed (owner {who})")
        elif s.status == "stale" and s.signoff:
            out.append(f"{s.role}: sign-off by {who} is stale (the release changed since)")
        elif s.status == "expired" and s.signoff:
            out.append(f"{s.role}: sign-off by {who} expired at {s.signoff.expires_at}")
        elif s.status == "rejected" and s.signoff:
            out.append(f"{s.role}: rejected by {who}: {s.signoff.comment}")
    return out


def _tools_reasons(qid: str, answer: dict[str, Any], facts: PolicyFacts) -> list[str]:
    out: list[str] = []
    free = set(answer.get("tools_without_approval", []))
    gated = set(answer.get("tools_requiring_approval", []))
    if not facts.tools:
        return [f"{qid}: no tool catalog: describe each tool in a [tools.NAME] table"]
    for name in sorted(free | gated):
        if name not in facts.tools:
            out.append(f"{qid}: tool {name} is not in the release's tool catalog")
    for name in sorted(free & gated):
        out.append(f"{qid}: tool {name} is listed both with and without approval")
    for name, tool in sorted(facts.tools.items()):
        rules = ", ".join(tool.rules) or "no matching rule"
        if tool.standing == "allowed" and name not in free:
            out.append(
                f"{qid}: the policy lets {name} run without approval ({rules}) "
                "but tools_without_approval does not list it"
            )
        if tool.standing != "allowed" and name in free:
            said = "needs approval" if tool.standing == "approval" else "denies it"
            out.append(f"{qid}: {name} is listed without approval but the policy {said} ({rules})")
        if tool.standing == "approval" and name not in gated and name not in free:
            out.append(
                f"{qid}: the policy requires approval for {name} ({rules}) "
                "but tools_requiring_approval does not list it"
            )
    return out


def _data_reasons(qid: str, answer: dict[str, Any], facts: PolicyFacts) -> list[str]:
    sources = set(answer.get("data_sources", []))
    return [
        f"{qid}: the policy lets {tool} read corpus {corpus}, which data_sources does not list"
        for corpus, tool in sorted(facts.readable_corpora().items())
        if corpus not in sources
    ]


def _budget_reasons(qid: str, answer: dict[str, Any], facts: PolicyFacts) -> list[str]:
    out: list[str] = []
    policy = {**facts.stop_conditions, **facts.budgets}
    for name, stated in answer.items():
        if not name.startswith("max_") or isinstance(stated, bool):
            continue
        if not isinstance(stated, int | float) or not math.isfinite(stated):
            continue  # answer_problems already names it
        actual = policy.get(name)
        source = f"@{name}" if name in facts.budgets else "a forbid ... when rule"
        if actual is None:
            out.append(f"{qid}: {name} is {stated} in the answer but the policy sets no limit")
        elif abs(float(actual) - float(stated)) > 1e-9:
            out.append(
                f"{qid}: {name} is {stated} in the answer but {actual} in the policy ({source})"
            )
    return out


def _rollback_reasons(
    gdb: GovernanceDB, qid: str, release: Release, answer: dict[str, Any], runbooks: Path
) -> list[str]:
    out: list[str] = []
    runbook = answer.get("runbook")
    try:
        known = {b.name for b in list_runbooks(runbooks)}
    except GovernanceError as exc:
        known = set()
        out.append(f"{qid}: cannot read runbooks: {exc}")
    if isinstance(runbook, str) and runbook not in known:
        out.append(f"{qid}: runbook {runbook!r} does not exist in {runbooks}")
    target = answer.get("rollback_to")
    if not isinstance(target, str):
        return out
    earlier = gdb.query(
        "SELECT version, gate_passed_at FROM releases WHERE agent = ? AND id < ? ORDER BY id",
        (release.agent, release.id),
    )
    if target == NO_EARLIER_RELEASE:
        if earlier:
            out.append(
                f"{qid}: rollback_to = {NO_EARLIER_RELEASE!r} is only for a first release; "
                f"name an earlier approved version ({', '.join(r['version'] for r in earlier)})"
            )
        elif not answer.get("disable_workflows"):
            out.append(f"{qid}: rolling back by disabling needs disable_workflows")
        return out
    match = next((r for r in earlier if r["version"] == target), None)
    if target == release.version:
        out.append(f"{qid}: rollback_to names this same version {target}")
    elif match is None:
        out.append(f"{qid}: rollback_to {target} is not an earlier release of {release.agent}")
    elif not match["gate_passed_at"]:
        out.append(f"{qid}: rollback_to {target} never passed the release gate")
    return out


def latest_evidence(
    gdb: GovernanceDB, release: Release, suite: Path | None = None, kind: str = "suite"
) -> Evidence | None:
    """The newest stored evaluation of this release (of `suite`, when given)."""
    sql = (
        "SELECT id, kind, suite_name, suite_path, suite_sha256, content_hash, target, cases,"
        " passed, metrics, finished_at, recorded_by FROM evaluations"
        " WHERE agent = ? AND version = ? AND kind = ?"
    )
    params: list[Any] = [release.agent, release.version, kind]
    if suite is not None:
        sql += " AND suite_path = ?"
        params.append(str(suite.resolve()))
    try:
        # by when it finished, not by row order: an import may add an older result last
        row = gdb.query_one(sql + " ORDER BY finished_at DESC, id DESC LIMIT 1", tuple(params))
    except sqlite3.OperationalError:  # a read-only DB of an older schema: no evidence yet
        return None
    if row is None:
        return None
    values = dict(row)
    try:
        values["metrics"] = json.loads(values["metrics"] or "{}")
    except ValueError:
        values["metrics"] = {}
    return Evidence(**values)


def _file_sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _evaluation(
    gdb: GovernanceDB, release: Release, rubric: Rubric
) -> tuple[list[str], list[str], Evidence | None, list[dict[str, str]], list[Evidence]]:
    """Reasons, notes, the evidence and a row per threshold: missing, stale or failing
    evidence blocks; a threshold whose kind of result does not exist yet is a note."""
    rule = rubric.evaluation
    if rule is None:
        return [], [], None, [], []
    wanted = rule.for_agent(release.agent, release.version)
    if wanted is None:
        note = (
            f"evaluation: rubric {rubric.name!r} names no suite for {release.agent} "
            f"{release.version}; not gated on behaviour"
        )
        return [], [note], latest_evidence(gdb, release), [], []
    reasons: list[str] = []
    notes: list[str] = []
    rows: list[dict[str, str]] = []
    evidence = latest_evidence(gdb, release, wanted.suite)
    run = (
        f"agentops eval run {wanted.suite} --target ... --release {release.agent} {release.version}"
    )
    if evidence is None:
        reasons.append(f"evaluation: no evaluation of suite {wanted.suite} ({run})")
    elif evidence.content_hash != release.content_hash:
        reasons.append(
            f"evaluation: the result of {evidence.finished_at[:19]} is stale: the release "
            f"changed since (content hash {evidence.content_hash[:12]} -> "
            f"{release.content_hash[:12]}); evaluate again ({run})"
        )
    elif _file_sha256(wanted.suite) != evidence.suite_sha256:
        reasons.append(
            f"evaluation: the result of {evidence.finished_at[:19]} is stale: suite "
            f"{wanted.suite} changed since (or is gone); evaluate again ({run})"
        )
    fresh = evidence is not None and not reasons
    replays: list[Evidence] = []
    for threshold in rule.thresholds:
        row = {"metric": threshold.metric, "threshold": threshold.text()}
        rows.append(row)
        if threshold.kind != "suite":
            rows.pop()
            more_rows, more, more_notes, found = _replay_threshold(gdb, release, wanted, threshold)
            rows += more_rows
            reasons += more
            notes += more_notes
            replays += found
            continue
        if evidence is None:
            row |= {"value": "-", "status": "missing"}
            continue
        measured = evidence.metric(threshold.metric)
        value = None if measured is None else measured.get("value")
        if not isinstance(value, int | float):
            row |= {"value": "-", "status": "not measured"}
            if fresh:
                reasons.append(
                    f"evaluation: {threshold.metric} was not measured by suite "
                    f"{evidence.suite_name} (no case of that kind); threshold {threshold.text()}"
                )
            continue
        shown = show_value(threshold.metric, float(value))
        assert measured is not None
        low, high, n = measured.get("low"), measured.get("high"), measured.get("n")
        if isinstance(low, int | float) and isinstance(high, int | float):
            span = f"{show_value(threshold.metric, low)}-{show_value(threshold.metric, high)}"
            ci = f"95 % CI {span}, "
        else:
            ci = ""
        ok = threshold.holds(float(value))
        row |= {
            "value": shown,
            "status": ("pass" if ok else "fail") + ("" if fresh else " (stale)"),
        }
        if not ok and fresh:
            reasons.append(
                f"evaluation: {threshold.metric} is {shown} ({ci}n={n}), threshold "
                f"{threshold.text()} (suite {evidence.suite_name}, {evidence.passed}/"
                f"{evidence.cases} cases passed, evaluated {evidence.finished_at[:19]})"
            )
    return reasons, notes, evidence, rows, replays


def _replay_threshold(
    gdb: GovernanceDB, release: Release, wanted: AgentEvaluation, threshold: Threshold
) -> tuple[list[dict[str, str]], list[str], list[str], list[Evidence]]:
    """Rows, reasons, notes and evidence for a replay/canary threshold (docs/evaluation.md):
    a replay result is required when the rubric sets `replay_min_sessions` (missing, stale,
    too small or over: blocks); a fresh canary verdict stored for the release counts too
    (over the threshold, or a verdict other than promote: blocks); otherwise a note."""
    rows: list[dict[str, str]] = []
    reasons: list[str] = []
    notes: list[str] = []
    found: list[Evidence] = []
    required = wanted.replay_min_sessions
    how = f"agentops eval replay RECORDS --target ... --release {release.agent} {release.version}"
    for kind in ("replay", "canary"):
        ev = latest_evidence(gdb, release, kind=kind)
        must = kind == "replay" and required is not None
        row = {"metric": threshold.metric, "threshold": threshold.text()}
        if ev is None:
            if must:
                rows.append(row | {"value": "-", "status": "missing (replay)"})
                reasons.append(
                    f"evaluation: no replay result for {release.agent} "
                    f"{release.version}, the rubric requires one ({how})"
                )
            elif kind == "replay":
                rows.append(row | {"value": "-", "status": "not evaluated"})
                notes.append(
                    f"evaluation: {threshold.metric} {threshold.text()}: not evaluated (no "
                    "replay or canary result; the rubric does not require one); not blocking"
                )
            continue
        found.append(ev)
        if ev.content_hash != release.content_hash:
            rows.append(row | {"value": "-", "status": f"stale ({kind})"})
            text = (
                f"evaluation: the {kind} result of {ev.finished_at[:19]} is stale: the release "
                f"changed since (content hash {ev.content_hash[:12]} -> "
                f"{release.content_hash[:12]})"
            )
            (reasons if must else notes).append(text + (f"; replay again ({how})" if must else ""))
            continue
        measured = ev.metric(threshold.metric) or {}
        value = measured.get("value")
        if not isinstance(value, int | float):
            rows.append(row | {"value": "-", "status": f"not measured ({kind})"})
            reasons.append(f"evaluation: the {kind} result {ev.id} measured no {threshold.metric}")
            continue
        ok = threshold.holds(float(value))
        rows.append(
            row
            | {
                "value": show_value(threshold.metric, value),
                "status": f"{'pass' if ok else 'fail'} ({kind})",
            }
        )
        taxonomy = ", ".join(
            f"{k} {n}" for k, n in list(ev.metrics.get("taxonomy", {}).items())[:4]
        )
        low, high = measured.get("low"), measured.get("high")
        ci = (
            f"95 % CI {low:g}-{high:g}, "
            if isinstance(low, int | float) and isinstance(high, int | float)
            else ""
        )
        if not ok:
            reasons.append(
                f"evaluation: {threshold.metric} is {value:g} ({ci}n={ev.cases}) in the {kind} "
                f"of {ev.suite_name}, threshold {threshold.text()} ({ev.cases - ev.passed} "
                f"sessions regressed{': ' + taxonomy if taxonomy else ''}; {ev.finished_at[:19]})"
            )
        if must and required is not None and ev.cases < required:
            reasons.append(
                f"evaluation: the replay result {ev.id} replayed {ev.cases} sessions; the rubric "
                f"requires at least {required} ({how})"
            )
        verdict = ev.metrics.get("verdict")
        if kind == "canary" and verdict != "promote":
            why = ev.metrics.get("why", "see agentops eval compare")
            reasons.append(f"evaluation: canary verdict {verdict} ({why})")
    return rows, reasons, notes, found


def check(
    gdb: GovernanceDB,
    release: Release,
    rubric: Rubric,
    runbooks: Path,
    now: datetime | None = None,
    *,
    owners_then_unknown: bool = False,
) -> GateResult:
    states = role_states(gdb, release, rubric, now, owners_then_unknown=owners_then_unknown)
    reasons = _role_reasons(states)
    if rubric.name != release.rubric:
        reasons.insert(
            0,
            f"{release.agent} {release.version} was proposed under rubric {release.rubric!r},"
            f" not {rubric.name!r}",
        )
    reasons += [f"answers: {p}" for p in answer_problems(rubric, release.answers)]
    facts: PolicyFacts | None = None
    try:
        facts = release.policy_facts()
    except GovernanceError as exc:
        reasons.append(f"policy: {exc}")
    for q in rubric.questions:
        answer = release.answer(q.id)
        if q.check == "tools" and facts is not None:
            reasons += _tools_reasons(q.id, answer, facts)
        elif q.check == "data" and facts is not None:
            reasons += _data_reasons(q.id, answer, facts)
        elif q.check == "budgets" and facts is not None:
            reasons += _budget_reasons(q.id, answer, facts)
        elif q.check == "rollback":
            reasons += _rollback_reasons(gdb, q.id, release, answer, runbooks)
    more, notes, evidence, rows, replays = _evaluation(gdb, release, rubric)
    reasons += more
    return GateResult(
        release,
        tuple(reasons),
        tuple(states),
        facts,
        tuple(notes),
        evidence,
        tuple(rows),
        tuple(replays),
    )


def record_pass(gdb: GovernanceDB, actor: str, result: GateResult) -> bool:
    """Remember the first time a release passed the gate (rollback targets need one)."""
    if not result.ready or result.release.gate_passed_at:
        return False
    from .clock import now_iso

    with gdb.transaction(actor) as tx:
        cursor = tx.execute(
            "UPDATE releases SET gate_passed_at = ? WHERE id = ? AND content_hash = ?"
            " AND gate_passed_at IS NULL",
            (now_iso(), result.release.id, result.release.content_hash),
        )
        if cursor.rowcount == 0:
            tx.unchanged()
            return False
        tx.audit(
            "release.gate_passed",
            f"{result.release.agent}@{result.release.version}",
            agent=result.release.agent,
            details={"content_hash": result.release.content_hash},
        )
    return True
