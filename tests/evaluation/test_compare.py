"""`agentops eval compare`: canary verdicts on constructed record sets (JSONL and a real
records DB), the significance tests against known values, and "too few sessions"."""

from __future__ import annotations

import json
import math
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agentops_console.evaluation.canary import fisher_exact, z_test
from agentops_console.protocol.records import SessionRecord
from agentops_console.records.store import open_store

from .conftest import live, propose, run

T0 = datetime(2025, 6, 2, 9, tzinfo=UTC)


def record(version: str, i: int, outcome: str, cost: float = 0.001) -> SessionRecord:
    at = T0 + timedelta(minutes=i)
    return SessionRecord(
        agent="it-support", agent_version=version, workflow="ticket-triage",
        principal="user-1", session_id=f"{version}-{i}", started_at=at, ended_at=at,
        last_event_at=at, status="completed", final_outcome=outcome, cost_usd=cost,
    )  # fmt: skip


def sessions(version: str, n: int, bad: int, cost: float = 0.001) -> list[SessionRecord]:
    return [record(version, i, "failed" if i < bad else "resolved", cost) for i in range(n)]


def write(path: Path, records: list[SessionRecord]) -> Path:
    path.write_text("".join(r.model_dump_json() + "\n" for r in records))
    return path


def compare(source: Path, *extra: str) -> tuple[int, str, str]:
    result = run("eval", "compare", "--agent", "it-support", "--baseline", "1.4.0",
                 "--candidate", "1.5.0", "--records", source, *extra)  # fmt: skip
    return result.exit_code, result.stdout, result.stderr


def test_promote_hold_roll_back_and_too_few(project: Path, tmp_path: Path) -> None:
    base = sessions("1.4.0", 400, bad=8)  # 2 % failed
    same = write(tmp_path / "same.jsonl", base + sessions("1.5.0", 200, bad=4))
    code, stdout, _ = compare(same)
    assert code == 0 and "1.4.0 -> 1.5.0: promote" in stdout, stdout
    assert "success_rate" in stdout and "p=" in stdout
    # worse, but 60 sessions cannot tell it from noise: hold
    hold = write(tmp_path / "hold.jsonl", base + sessions("1.5.0", 60, bad=3))
    code, _, stderr = compare(hold)
    assert code == 1 and "hold: worse but not significantly" in stderr, stderr
    # clearly worse: roll back, with the numbers that drove it
    worse = write(tmp_path / "worse.jsonl", base + sessions("1.5.0", 200, bad=30))
    code, _, stderr = compare(worse)
    assert code == 1 and "roll back: significantly worse:" in stderr
    assert "failure_rate 2.0 % -> 15.0 % (p=7.13e-10, z)" in stderr, stderr
    # every session over the rubric's cost multiple (2x the baseline median): bad sessions
    dear = write(tmp_path / "dear.jsonl", base + sessions("1.5.0", 200, bad=4, cost=0.003))
    code, _, stderr = compare(dear)
    assert code == 1 and "roll back" in stderr and "bad_session_rate 2.0 % -> 100.0 %" in stderr
    # too few sessions: one line with the counts, exit 1
    few = write(tmp_path / "few.jsonl", base + sessions("1.5.0", 12, bad=0))
    code, stdout, stderr = compare(few)
    assert code == 1 and stdout == ""
    assert stderr.strip().splitlines() == [
        "agentops: error: it-support 1.4.0 -> 1.5.0: insufficient: too few sessions to decide: "
        "baseline 1.4.0 400, candidate 1.5.0 12, at least 30 each needed"
    ]
    doc = json.loads(run("eval", "compare", "--agent", "it-support", "--baseline", "1.4.0",
                         "--candidate", "1.5.0", "--records", worse, "--json").stdout)  # fmt: skip
    assert doc["verdict"] == "roll back" and doc["candidate"]["sessions"] == 200
    assert doc["suite"]["material_regressions_per_1000"]["value"] == 130.0


def test_a_stored_canary_verdict_counts_at_the_gate(project: Path, tmp_path: Path) -> None:
    live("1.3.2")
    live("1.4.0")
    propose("1.5.0")
    db = tmp_path / "canary-records.db"
    with open_store(db, writer=True, create=True) as store:  # a real records DB
        store.write(sessions("1.4.0", 400, bad=8) + sessions("1.5.0", 12, bad=0))
    code, _, stderr = compare(db, "--release")
    assert code == 1 and "insufficient" in stderr
    check = run("release", "check", "it-support", "1.5.0")
    assert check.exit_code == 1 and "canary verdict insufficient" in check.stdout
    with open_store(db, writer=True) as store:
        store.write([record("1.5.0", 100 + i, "failed") for i in range(40)])
    code, _, stderr = compare(db, "--release")
    assert code == 1 and "roll back" in stderr
    check = run("release", "check", "it-support", "1.5.0")
    assert "material_regressions_per_1000 is" in check.stdout and "in the canary" in check.stdout
    rows = (
        sqlite3.connect(project / "gov.db")
        .execute("SELECT kind, cases FROM evaluations ORDER BY id")
        .fetchall()
    )
    assert rows == [("canary", 12), ("canary", 52)]


def test_significance_tests_against_known_values() -> None:
    # Fisher's tea-tasting table: two-sided p = 0.4857 (R: fisher.test(matrix(c(3,1,1,3),2)))
    assert math.isclose(fisher_exact(3, 1, 1, 3), 0.4857142857, rel_tol=1e-6)
    assert math.isclose(fisher_exact(1, 9, 11, 3), 0.002759456, rel_tol=1e-5)
    # z-test: 45/100 vs 60/100, z = -2.1239, p = 0.03368 (prop.test without correction)
    assert math.isclose(z_test(45, 100, 60, 100), 0.03368, rel_tol=1e-3)
    assert z_test(0, 0, 1, 10) == 1.0
