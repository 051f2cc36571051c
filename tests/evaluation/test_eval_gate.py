"""The behavioural gate end to end: the demo agents as targets on the real runtime, a real
governance DB and records DB in tmp_path, the CLI as a person or CI would run it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from .conftest import POLICY, TARGETS, live, ok, propose, run, sign_all


def evaluate(project: Path, version: str, target: str | None = None) -> dict[str, Any]:
    target = target or f"{TARGETS}:it_support_{version.replace('.', '_')}"
    suite = project / "fixtures" / "evals" / "it-support.toml"
    result = ok("eval", "run", suite, "--target", target, "--release", "it-support", version,
                "--json")  # fmt: skip
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def test_the_regression_in_1_5_0_fails_the_gate_and_1_5_1_passes(project: Path) -> None:
    live("1.3.2")
    live("1.4.0")
    propose("1.5.0")
    sign_all("1.5.0")
    report = evaluate(project, "1.5.0")
    assert report["cases"] == 500 and report["passed"] == 450
    assert report["taxonomy"] == {
        "outcome:escalated->refused": 50, "must_call": 50, "must_not_call": 50,
    }  # fmt: skip
    conflicts = report["categories"]["conflicting-identity"]["task_success_rate"]
    assert conflicts["value"] == 0.0
    check = run("release", "check", "it-support", "1.5.0")
    assert check.exit_code == 1
    reasons = [r for r in check.stdout.splitlines() if "evaluation:" in r]
    assert len(reasons) == 2, check.stdout  # signed by everyone: only the behaviour fails
    assert (
        "policy_adherence_high_risk is 68.8 %" in reasons[0] and "threshold ≥ 95.0 %" in reasons[0]
    )
    assert "task_success_rate is 90.0 %" in reasons[1] and "threshold ≥ 95.0 %" in reasons[1]
    assert run("release", "promote", "it-support", "1.5.0").exit_code == 1

    propose("1.5.1")
    report = evaluate(project, "1.5.1")
    assert report["passed"] == 500 and report["gate"]["evaluation"]["evidence"]["passed"] == 500
    sign_all("1.5.1")
    assert ok("release", "check", "it-support", "1.5.1").stdout.strip() == "it-support 1.5.1: ready"
    shown = ok("release", "show", "it-support", "1.5.1").stdout
    assert "evaluation: suite it-support (500/500 cases passed" in shown
    assert "policy_adherence_high_risk" in shown and "not evaluated" in shown
    ok("release", "promote", "it-support", "1.5.1")

    # every evaluated session is a record that opens like any other
    session = report["results"][0]["session_id"]
    detail = ok("sessions", "show", session, "--json").stdout
    assert json.loads(detail)["agent_version"] == "1.5.1"
    # the result and its audit row
    audit = ok("audit", "list", "--agent", "it-support", "--json").stdout
    assert sum(row["action"] == "evaluation.record" for row in json.loads(audit)) == 2


def test_a_missing_or_stale_result_blocks_the_gate(project: Path, tmp_path: Path) -> None:
    live("1.3.2")
    live("1.4.0")
    propose("1.5.1")
    sign_all("1.5.1")
    missing = run("release", "check", "it-support", "1.5.1")
    assert missing.exit_code == 1 and "evaluation: no evaluation of suite" in missing.stdout
    evaluate(project, "1.5.1")
    ok("release", "check", "it-support", "1.5.1")

    # the suite changes: the result no longer vouches for it
    suite = project / "fixtures" / "evals" / "it-support.toml"
    original = suite.read_bytes()
    suite.write_bytes(original + b"\n# one more comment\n")
    stale = run("release", "check", "it-support", "1.5.1")
    assert stale.exit_code == 1 and f"suite {suite} changed since" in stale.stdout
    suite.write_bytes(original)
    ok("release", "check", "it-support", "1.5.1")

    # the policy changes: a new revision, its content hash moves, sign-offs and result stale
    changed = tmp_path / "changed.cedar"
    changed.write_text(POLICY.read_text() + "\n// reviewed again\n")
    propose("1.5.1", policy=changed)
    sign_all("1.5.1")
    after = run("release", "check", "it-support", "1.5.1")
    assert after.exit_code == 1
    assert "is stale: the release changed since (content hash" in after.stdout, after.stdout
    assert "not signed" not in after.stdout and "sign-off" not in after.stdout


def test_releases_before_from_version_and_old_rubrics_are_not_gated(project: Path) -> None:
    live("1.3.2")  # from_version is 1.5.0: 1.3.2 and 1.4.0 go live without an evaluation
    live("1.4.0")
    rubric = project / "rubrics" / "deployment.toml"
    text = rubric.read_text()
    rubric.write_text(text[: text.index("# Behavioural evidence")])  # a rubric of before
    propose("1.5.1")
    sign_all("1.5.1")
    assert ok("release", "check", "it-support", "1.5.1").stdout.endswith("ready\n")


def test_bad_input_is_one_line_with_its_exit_code_and_writes_nothing(project: Path) -> None:
    live("1.3.2")
    live("1.4.0")
    propose("1.5.1")
    suite = project / "fixtures" / "evals" / "it-support.toml"
    db = project / "gov.db"

    def audit_rows() -> int:
        with sqlite3.connect(db) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM audit").fetchone()[0])

    before = audit_rows()
    good = f"{TARGETS}:it_support_1_5_1"
    typo = project / "typo.toml"
    typo.write_text(suite.read_text().replace('id = "account-lockout-003"', 'id = "x', 1))
    unknown_tool = project / "tool.toml"
    unknown_tool.write_text(suite.read_text().replace('"unlock_account",', '"unlok_account",', 1))
    cases = [
        (["--target", "no.such.module:f"], suite, 2, "cannot import target module no.such.module"),
        (["--target", "tests.evaluation.targets:nope"], suite, 2, "has no nope"),
        (["--target", "tests.evaluation.targets:NOT_CALLABLE"], suite, 2, "is not callable"),
        (["--target", "nocolon"], suite, 2, "must be package.module:function"),
        (["--target", good], typo, 2, f"{typo}:"),
        (["--target", good], unknown_tool, 2, "names unknown tool 'unlok_account'"),
        (["--target", good], project / "absent.toml", 2, "cannot read suite"),
    ]
    for extra, path, code, message in cases:
        result = run("eval", "run", path, *extra, "--release", "it-support", "1.5.1")
        assert result.exit_code == code, (extra, result.stderr)
        assert result.stderr.startswith("agentops: error: ") and message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    for release, message in ((("nobody", "1.0"), "unknown agent"), (("it-support", "9.9"), "9.9")):
        result = run("eval", "run", suite, "--target", good, "--release", *release)
        assert result.exit_code == 3 and message in result.stderr
    assert audit_rows() == before
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0] == 0
    assert not (project / "records.db").exists()
