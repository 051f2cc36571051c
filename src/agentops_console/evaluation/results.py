"""Where an evaluation's inputs come from and its results go: the governance DB (the
release under test, the stored result the gate reads) and the records DB (every
evaluated session, so `agentops sessions show` opens it like any other).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .harness import EvalRun, ReleaseUnderTest
from .replay import ReplayRun

if TYPE_CHECKING:
    from ..governance.db import GovernanceDB
    from ..records.store import WriteResult

#: Suite metrics copied into the audit row, so the log alone says what was found.
_AUDITED = ("task_success_rate", "policy_adherence_high_risk", "unauthorized_attempt_rate_red_team")


def release_under_test(gdb: GovernanceDB, agent: str, version: str) -> ReleaseUnderTest:
    """The release as the gate knows it: its policy, tool catalog, content hash; the
    agent's registered tenant. NotFound for an unknown agent or version."""
    from ..governance.releases import get_release

    release = get_release(gdb, agent, version)
    row = gdb.query_one("SELECT tenant FROM agents WHERE name = ?", (agent,))
    retries = release.answer("q3").get("max_retries")
    return ReleaseUnderTest(
        agent=agent,
        version=version,
        policy=release.policy,
        catalog=release.catalog,
        tenant=row["tenant"] if row else None,
        content_hash=release.content_hash,
        max_retries=retries if isinstance(retries, int) and not isinstance(retries, bool) else None,
    )


def store_result(gdb: GovernanceDB, run: EvalRun, *, actor: str, kind: str = "suite") -> int:
    """One row bound to the content hash that was evaluated and the suite file's hash,
    written in one transaction with its audit row. Returns the row id."""
    summary = run.summary
    headline = {k: summary["suite"][k]["value"] for k in _AUDITED if k in summary["suite"]}
    return store_evidence(
        gdb,
        run.release,
        kind=kind,
        name=run.suite.name,
        path=str(run.suite.path.resolve()),
        sha256=run.suite.sha256,
        target=run.target,
        summary=summary,
        started_at=run.started_at,
        finished_at=run.finished_at,
        actor=actor,
        audit={"suite": run.suite.name, "suite_sha256": run.suite.sha256, **headline},
    )


def store_evidence(
    gdb: GovernanceDB,
    rel: ReleaseUnderTest,
    *,
    kind: str,
    name: str,
    path: str,
    sha256: str,
    target: str,
    summary: dict[str, Any],
    started_at: float,
    finished_at: float,
    actor: str,
    audit: dict[str, Any],
) -> int:
    """Any kind of result (suite, replay, canary): one row and its audit row, one
    transaction; Conflict (nothing stored) when the release changed meanwhile."""
    from ..governance.clock import iso, utcnow
    from ..governance.errors import Conflict
    from ..governance.releases import get_release, write_evaluation

    if rel.content_hash is None:
        raise ValueError("an evaluation is stored only for a release from the governance DB")
    stamp = iso(utcnow())
    with gdb.transaction(actor) as tx:
        release = get_release(gdb, rel.agent, rel.version)
        if release.content_hash != rel.content_hash:
            # revised while the suite ran: the result describes content that is gone
            raise Conflict(
                f"release {rel.agent} {rel.version} changed while it was evaluated; "
                "nothing was stored, evaluate again"
            )
        row_id = write_evaluation(
            tx,
            release.id,
            {
                "agent": rel.agent,
                "version": rel.version,
                "content_hash": rel.content_hash,
                "kind": kind,
                "suite_name": name,
                "suite_path": path,
                "suite_sha256": sha256,
                "target": target,
                "cases": summary["cases"],
                "passed": summary["passed"],
                "metrics": json.dumps(summary, sort_keys=True),
                "started_at": _iso(started_at),
                "finished_at": _iso(finished_at),
                "recorded_at": stamp,
                "recorded_by": actor,
            },
        )
        tx.audit(
            "evaluation.record",
            f"{rel.agent}@{rel.version}",
            agent=rel.agent,
            details={
                "evaluation": row_id,
                "kind": kind,
                "content_hash": rel.content_hash,
                "target": target,
                "cases": summary["cases"],
                "passed": summary["passed"],
                **audit,
            },
        )
    return row_id


def store_replay(gdb: GovernanceDB, replay: ReplayRun, *, actor: str) -> int:
    """A replay result, bound to the release's content hash and the replayed set's hash."""
    summary = replay.summary
    per_1000 = summary["suite"]["material_regressions_per_1000"]["value"]
    return store_evidence(
        gdb,
        replay.run.release,
        kind="replay",
        name=replay.run.suite.name,
        path=replay.replay_set.source,
        sha256=replay.replay_set.sha256,
        target=replay.run.target,
        summary={**summary, "cost_multiple": replay.cost_multiple},
        started_at=replay.run.started_at,
        finished_at=replay.run.finished_at,
        actor=actor,
        audit={
            "records": replay.replay_set.source,
            "set_sha256": replay.replay_set.sha256,
            "material_regressions_per_1000": per_1000,
        },
    )


def _iso(epoch: float) -> str:
    from datetime import UTC, datetime

    from ..governance.clock import iso

    return iso(datetime.fromtimestamp(epoch, UTC))


def store_records(path: Path, run: EvalRun) -> WriteResult:
    """Every evaluated session into the records DB (one writer, batched, idempotent)."""
    from ..records.store import open_store

    with open_store(path, writer=True, create=True) as store:
        return store.write(run.records)


def report(run: EvalRun, evaluation_id: int | None = None) -> dict[str, Any]:
    """The `--json` document: the run, its metrics, and every case's verdict."""
    return {
        "suite": run.suite.name,
        "suite_path": str(run.suite.path),
        "suite_sha256": run.suite.sha256,
        "agent": run.release.agent,
        "version": run.release.version,
        "content_hash": run.release.content_hash,
        "target": run.target,
        "run_id": run.run_id,
        "duration_s": round(run.duration_s, 3),
        "evaluation_id": evaluation_id,
        **run.summary,
        "results": [r.as_dict() for r in run.results],
    }
