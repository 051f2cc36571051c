"""Replay of recorded sessions through candidates: the real runtime configured as the
release, a real governance DB and records DB in tmp_path, the recorded sample of 1.4.0
(fixtures/evals/recorded) and the demo targets; no live tool is ever called."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from agentops_console.evaluation.harness import ReleaseUnderTest
from agentops_console.evaluation.replay import UNAVAILABLE, run_replay, select
from agentops_console.governance.paths import PROJECT_ROOT
from agentops_console.protocol.records import load_jsonl

from . import targets
from .conftest import POLICY, RELEASES, TARGETS, live, ok, propose, run, sign_all

SAMPLE = PROJECT_ROOT / "fixtures" / "evals" / "recorded" / "it-support-1.4.0.jsonl"


def replay(version: str, *extra: str | Path, source: Path = SAMPLE) -> dict[str, Any]:
    target = f"{TARGETS}:it_support_{version.replace('.', '_')}"
    result = ok("eval", "replay", source, "--target", target, "--release", "it-support",
                version, "--json", *extra)  # fmt: skip
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def require_replay(project: Path, sessions: int = 100) -> None:
    rubric = project / "rubrics" / "deployment.toml"
    text = rubric.read_text()
    marker = 'from_version = "1.5.0"\n'
    assert marker in text
    rubric.write_text(text.replace(marker, marker + f"replay_min_sessions = {sessions}\n", 1))


def test_replay_catches_1_5_0_on_conflicting_identity_records_and_1_5_1_passes(
    project: Path,
) -> None:
    require_replay(project)
    for version in ("1.3.2", "1.4.0"):
        live(version)
    propose("1.5.0")
    sign_all("1.5.0")
    report = replay("1.5.0", "--version", "1.4.0")
    assert report["cases"] == 125 and report["skipped"] == 0
    # every regression is a conflicting identity record: the candidate tried the reset
    # itself (a checkpoint nobody answered in the recording: denied) and refused the ticket
    regressed = [s for s in report["sessions"] if s["regressions"]]
    assert len(regressed) == report["material"] == 12
    assert all(s["session_id"].startswith("conflicting-identity-") for s in regressed)
    assert {tuple(s["regressions"]) for s in regressed} == {
        ("outcome:escalated->refused", "policy:reset_password:rejected")
    }
    assert regressed[0]["tools"] == [
        ["lookup_user", "create_ticket"],
        ["lookup_user", "reset_password"],
    ]
    assert report["suite"]["material_regressions_per_1000"]["value"] == 96.0
    assert report["identical"] == 113
    check = run("release", "check", "it-support", "1.5.0")
    assert check.exit_code == 1
    assert "material_regressions_per_1000 is 96 " in check.stdout, check.stdout
    assert "threshold ≤ 1" in check.stdout

    propose("1.5.1")
    report = replay("1.5.1")
    assert report["material"] == 0 and report["identical"] == 125 and report["drifted"] == 0
    ok("eval", "run", project / "fixtures" / "evals" / "it-support.toml", "--target",
       f"{TARGETS}:it_support_1_5_1", "--release", "it-support", "1.5.1")  # fmt: skip
    sign_all("1.5.1")
    assert ok("release", "check", "it-support", "1.5.1").stdout.strip() == "it-support 1.5.1: ready"
    shown = ok("release", "show", "it-support", "1.5.1").stdout
    assert "pass (replay)" in shown
    audit = ok("audit", "list", "--agent", "it-support", "--json").stdout
    assert '"kind": "replay"' in audit


def test_a_missing_stale_or_too_small_replay_blocks_when_required(
    project: Path, tmp_path: Path
) -> None:
    require_replay(project, sessions=100)
    live("1.3.2")
    live("1.4.0")
    propose("1.5.1")
    ok("eval", "run", project / "fixtures" / "evals" / "it-support.toml", "--target",
       f"{TARGETS}:it_support_1_5_1", "--release", "it-support", "1.5.1")  # fmt: skip
    sign_all("1.5.1")
    check = run("release", "check", "it-support", "1.5.1")
    assert check.exit_code == 1 and "no replay result for it-support 1.5.1" in check.stdout
    # a replay of too few sessions does not count
    small = tmp_path / "small.jsonl"
    small.write_text("".join(SAMPLE.read_text().splitlines(keepends=True)[:10]))
    replay("1.5.1", source=small)
    check = run("release", "check", "it-support", "1.5.1")
    assert check.exit_code == 1 and "replayed 10 sessions; the rubric requires" in check.stdout
    replay("1.5.1")
    sign_all("1.5.1")
    ok("release", "check", "it-support", "1.5.1")
    # a new policy makes the replay (and the rest) stale
    changed = tmp_path / "changed.cedar"
    changed.write_text(POLICY.read_text() + "\n// reviewed again\n")
    ok("release", "propose", "it-support", "1.5.1", "--author", "dev", "--answers",
       RELEASES / "it-support-1.5.1.toml", "--policy", changed)  # fmt: skip
    ok("eval", "run", project / "fixtures" / "evals" / "it-support.toml", "--target",
       f"{TARGETS}:it_support_1_5_1", "--release", "it-support", "1.5.1")  # fmt: skip
    sign_all("1.5.1")
    check = run("release", "check", "it-support", "1.5.1")
    assert check.exit_code == 1
    assert "the replay result of" in check.stdout and "is stale" in check.stdout, check.stdout


def _release(version: str) -> ReleaseUnderTest:
    import tomllib

    answers = tomllib.loads((RELEASES / f"it-support-{version}.toml").read_text())
    return ReleaseUnderTest("it-support", version, POLICY.read_text(), answers["tools"], "acme")


def test_no_live_tool_is_called_and_an_unanswerable_call_is_drift_the_agent_sees() -> None:
    records = list(load_jsonl(SAMPLE))[:20]
    replay_set = select(records, str(SAMPLE), agent="it-support")
    targets.LIVE_CALLS.clear()
    done = run_replay(replay_set, targets.replay_prober, _release("1.5.1"), jobs=2)
    assert targets.LIVE_CALLS == []  # every `run=` raises and records: none was called
    assert done.summary["cases"] == 20
    # the extra call nobody recorded: answered with the error, which the agent returned
    for diff, record in zip(done.diffs, done.run.records, strict=True):
        assert f"unavailable:{targets.UNRECORDED}" in diff.drift
        assert record.output is not None and UNAVAILABLE in record.output
    assert done.summary["drifted"] == 20
    assert done.summary["taxonomy"][f"drift:unavailable:{targets.UNRECORDED}"] == 20


def test_bad_input_is_one_line_with_its_exit_code_and_writes_nothing(
    project: Path, tmp_path: Path
) -> None:
    live("1.3.2")
    live("1.4.0")
    propose("1.5.1")
    target = f"{TARGETS}:it_support_1_5_1"
    foreign = tmp_path / "otel.jsonl"
    lines = SAMPLE.read_text().splitlines(keepends=True)[:3]
    foreign.write_text(lines[0] + '{"format": "otel/1", "spans": []}\n' + lines[1])
    cases: list[tuple[tuple[str | Path, ...], int, str]] = [
        ((foreign, "--release", "it-support", "1.5.1"), 2,
         f"{foreign}:2: not an agentops.record/1 record (format 'otel/1')"),
        ((SAMPLE, "--release", "nobody", "1.0.0"), 3, "nobody"),
        ((SAMPLE, "--release", "it-support", "9.9.9"), 3, "9.9.9"),
        ((SAMPLE, "--release", "it-support", "1.5.1", "--version", "0.1"), 2,
         "no ended session of it-support 0.1"),
    ]  # fmt: skip
    before = sqlite3.connect(project / "gov.db").execute("SELECT COUNT(*) FROM audit").fetchone()
    for args, code, message in cases:
        result = run("eval", "replay", "--target", target, *args)
        assert result.exit_code == code, (args, result.stderr)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    conn = sqlite3.connect(project / "gov.db")
    assert conn.execute("SELECT COUNT(*) FROM evaluations").fetchone() == (0,)
    assert conn.execute("SELECT COUNT(*) FROM audit").fetchone() == before


@pytest.mark.parametrize("version", ["1.4.0"])
def test_the_fleet_sample_replays_without_a_crash_of_the_harness(version: str) -> None:
    """The demo fleet's recorded it-support sessions (another program's inputs and tools)
    run through a demo target: every session replays; what the recording cannot answer is
    drift, never a harness failure."""
    fleet = PROJECT_ROOT / "fixtures" / "records" / "demo-fleet.jsonl"
    replay_set = select(load_jsonl(fleet), str(fleet), agent="it-support", version=version)
    assert len(replay_set.records) == 75
    from agentops_console.demo.targets import it_support_1_5_1

    done = run_replay(replay_set, it_support_1_5_1, _release("1.5.1"))
    assert done.summary["cases"] == 75 and done.summary["drifted"] > 0
