"""The gate reads a release's newest evaluation by when it finished, not by row order: an
import can add an older result after a newer one."""

from __future__ import annotations

from pathlib import Path

from agentops_console.governance.db import GovernanceDB
from agentops_console.governance.gate import latest_evidence
from agentops_console.governance.releases import Release, write_evaluation
from tests.governance.gov_fixtures import new_db, propose_fixture, register


def _store(gdb: GovernanceDB, release: Release, finished_at: str, passed: int) -> None:
    with gdb.transaction("importer") as tx:
        write_evaluation(
            tx,
            release.id,
            {
                "agent": release.agent,
                "version": release.version,
                "content_hash": release.content_hash,
                "kind": "suite",
                "suite_name": "it-support",
                "suite_path": "/suites/it-support.toml",
                "suite_sha256": "0" * 64,
                "target": "pkg:fn",
                "cases": 10,
                "passed": passed,
                "metrics": "{}",
                "started_at": finished_at,
                "finished_at": finished_at,
                "recorded_at": finished_at,
                "recorded_by": "importer",
            },
        )
        tx.audit("evaluation.record", f"{release.agent}@{release.version}", agent=release.agent)


def test_the_newest_result_is_the_one_that_finished_last(tmp_path: Path) -> None:
    gdb = new_db(tmp_path)
    register(gdb)
    release = propose_fixture(gdb, "it-support-1.5.0.toml", "1.5.0")
    _store(gdb, release, "2026-11-02T10:00:00.000000+00:00", passed=10)  # the newer result
    _store(gdb, release, "2026-10-01T10:00:00.000000+00:00", passed=3)  # imported later
    evidence = latest_evidence(gdb, release)
    assert evidence is not None
    assert evidence.passed == 10
