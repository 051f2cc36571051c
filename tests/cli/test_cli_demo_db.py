"""`agentops demo --db FILE` says what it did to the DB in one sentence, on a new DB and on
one kept from an earlier run (issue 13, item 14): not "0 agents registered" followed by
one "already registered" note per agent."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from agentops_console.cli.main import app

LIVE = "live: billing 2.1.0, it-support 1.4.0, research 0.9.2"


def demo_line(db: Path) -> str:
    args = ["demo", "--headless", "--duration", "0.3", "--speed", "20", "--db", str(db)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "governance DB" in line]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_new_then_kept_demo_db_is_one_consistent_sentence(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    first = demo_line(db)
    assert first == (
        f"agentops: demo governance DB {db}: 3 agents registered with owners and releases; {LIVE}"
    )
    again = demo_line(db)  # a new fleet listens on new ports
    assert again == (
        f"agentops: demo governance DB {db}: reused 3 agents registered earlier"
        f" (endpoints updated); {LIVE}"
    )
