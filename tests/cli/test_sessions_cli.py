"""`agentops sessions list|show|export|import` through Typer's CliRunner on real files:
data on stdout, one-line errors on stderr, documented exit codes, never a traceback."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from agentops_console.cli.main import app
from agentops_console.protocol.records import SessionRecord, dumps, load_jsonl
from tests.records.live import approved, denied, killed, live_runtime, ordinary, shifted


@pytest.fixture(scope="module")
def records_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Sessions of a real runtime on loopback, two versions, exported as JSON Lines."""
    path = tmp_path_factory.mktemp("export") / "sessions.jsonl"
    out: list[SessionRecord] = []
    with live_runtime("1.4.0") as live:
        for sid in (ordinary(live, "a1"), denied(live, "a2"), approved(live, "a3")):
            out.append(live.record(sid))
    with live_runtime("1.5.0") as live:
        out += [live.record(killed(live, "b1")), live.record(ordinary(live, "b2", "user-9"))]
    out.append(shifted(out[0], days=30))
    path.write_text("".join(dumps(r) + "\n" for r in out), encoding="utf-8")
    return path


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "records.db"
    monkeypatch.setenv("AGENTOPS_RECORDS", str(path))
    return path


def run(*args: str) -> Result:
    result = CliRunner().invoke(app, ["sessions", *args])
    assert "Traceback" not in result.stdout + result.stderr
    return result


def ok(*args: str) -> Result:
    result = run(*args)
    assert result.exit_code == 0, result.stderr
    return result


def error(code: int, *args: str) -> str:
    result = run(*args)
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("agentops: error: "), result.stderr
    return lines[0]


def test_import_is_idempotent(db: Path, records_file: Path) -> None:
    first = ok("import", str(records_file), "--json")
    counts = {"read": 6, "inserted": 6, "replaced": 0, "merged": 0, "kept": 0}
    assert json.loads(first.stdout) == counts
    assert "imported 6 records" in first.stderr
    again = ok("import", str(records_file), "--json")
    assert json.loads(again.stdout) == {**counts, "inserted": 0, "kept": 6}
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM sessions").fetchone() == (6,)


def test_import_merges_a_later_run_of_a_conversation(
    db: Path, records_file: Path, tmp_path: Path
) -> None:
    """A record whose session started after the stored one of the same id ended (a later
    run of an evicted conversation) is merged into it, and the summary says so."""
    first = next(iter(load_jsonl(records_file)))
    later = shifted(first, days=-1).model_copy(update={"session_id": first.session_id})
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    one.write_text(dumps(first) + "\n", encoding="utf-8")
    two.write_text(dumps(later) + "\n", encoding="utf-8")
    ok("import", str(one))
    merged = ok("import", str(two), "--json")
    assert json.loads(merged.stdout)["merged"] == 1
    assert "1 merged into an earlier run of their conversation" in merged.stderr
    again = ok("import", str(two), "--json")  # the same run again changes nothing
    assert json.loads(again.stdout)["kept"] == 1
    shown = json.loads(ok("show", first.session_id, "--json").stdout)
    assert len(shown["spans"]) == 2 * len(first.spans)


def test_list_with_filters(db: Path, records_file: Path) -> None:
    ok("import", str(records_file))
    listed = ok("list")
    header, *rows = listed.stdout.splitlines()
    assert header.split()[:4] == ["STARTED", "AGENT", "VERSION", "SESSION"]
    assert [r.split()[4] for r in rows] == ["b2", "b1", "a3", "a2", "a1", "a1-30d"]
    assert "6 sessions" in listed.stderr

    def ids(*flags: str) -> list[str]:
        return [r["session_id"] for r in json.loads(ok("list", "--json", *flags).stdout)]

    assert ids("--version", "1.5.0") == ["b2", "b1"]
    assert ids("--outcome", "failed") == ["b1"]
    assert ids("--flag", "killed") == ["b1"]
    assert ids("--workflow", "crm") == ["a2"]
    assert ids("--principal", "user-9") == ["b2"]
    assert ids("--agent", "it-support", "--limit", "2") == ["b2", "b1"]
    assert ids("--since", "7d") == ["b2", "b1", "a3", "a2", "a1"]
    assert ids("--until", "7d") == ["a1-30d"]
    assert ids("--since", "2000-01-01T00:00:00Z", "--until", "2000-01-02") == []
    assert "spans" not in json.loads(ok("list", "--json").stdout)[0]


def test_show_prints_every_audit_field(db: Path, records_file: Path) -> None:
    ok("import", str(records_file))
    text = ok("show", "a3").stdout
    for expected in (
        "session a3  agent it-support 1.4.0  tenant acme",
        "status completed  final outcome unknown",
        "reset_password@3.1.0  [ok]",
        "policy approved (version 1.4.0)",
        "human override approved by lead at ",
        ": ticket 42",
        'arguments {"user":"user-3310"}',
        'output {"reset":true}',
        "latency ",
    ):
        assert expected in text, expected
    denial = ok("show", "a2").stdout
    assert "policy deny (version 1.4.0): customer-facing-change-needs-approved-change" in denial
    killed_text = ok("show", "b1").stdout
    assert "killed by otto.ops" in killed_text and "final outcome failed" in killed_text
    data = json.loads(ok("show", "a3", "--json").stdout)
    assert data["format"] == "agentops.record/1"
    assert data["spans"][0]["human_override"]["by"] == "lead"


def test_export_round_trips_through_import(db: Path, records_file: Path, tmp_path: Path) -> None:
    ok("import", str(records_file))
    out = tmp_path / "out.jsonl"
    done = ok("export", "--format", "jsonl", "--out", str(out))
    assert "exported 6 sessions" in done.stderr and done.stdout == ""
    assert sorted(load_jsonl(out), key=lambda r: r.session_id) == sorted(
        load_jsonl(records_file), key=lambda r: r.session_id
    )
    assert next(r.session_id for r in load_jsonl(out)) == "a1-30d"  # oldest first
    on_stdout = ok("export", "--version", "1.5.0").stdout.splitlines()
    assert [json.loads(line)["session_id"] for line in on_stdout] == ["b1", "b2"]
    copy = tmp_path / "copy.db"
    assert ok("import", str(out), "--records", str(copy)).exit_code == 0
    assert ok("export", "--records", str(copy)).stdout.count("\n") == 6


def test_show_unknown_and_ambiguous(db: Path, records_file: Path, tmp_path: Path) -> None:
    ok("import", str(records_file))
    assert "no recorded session nope" in error(3, "show", "nope")
    other = tmp_path / "billing.jsonl"
    record = next(load_jsonl(records_file)).model_copy(update={"agent": "billing"})
    other.write_text(dumps(record) + "\n", encoding="utf-8")
    ok("import", str(other))
    assert "--agent" in error(2, "show", record.session_id)
    assert ok("show", record.session_id, "--agent", "billing").exit_code == 0


def test_bad_input_is_one_line(db: Path, records_file: Path, tmp_path: Path) -> None:
    assert "no records database at" in error(6, "list")
    ok("import", str(records_file))
    assert "unknown outcome 'great'" in error(2, "list", "--outcome", "great")
    assert "unknown flag kind 'oops'" in error(2, "list", "--flag", "oops")
    assert "--since: invalid time 'yesterday'" in error(2, "list", "--since", "yesterday")
    assert "--since must be before --until" in error(2, "list", "--since", "1d", "--until", "2d")
    assert "unknown format 'csv'" in error(2, "export", "--format", "csv")
    assert "cannot read" in error(2, "import", str(tmp_path / "missing.jsonl"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text(records_file.read_text().splitlines()[0] + '\n{"format": "x/9"}\n')
    message = error(2, "import", str(bad))
    assert f"{bad}:2: not an agentops.record/1 record (format 'x/9')" in message
    assert len(json.loads(ok("list", "--json").stdout)) == 6  # the bad file added nothing
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"nope" * 1000)
    assert "not a records database" in error(6, "list", "--records", str(garbage))
    assert "is an SQLite file but not a records database" in error(
        6, "import", str(records_file), "--records", str(_foreign(tmp_path))
    )


def _foreign(tmp_path: Path) -> Path:
    path = tmp_path / "foreign.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x)")
    return path


def test_import_refuses_while_another_writer_holds_the_db(db: Path, records_file: Path) -> None:
    from agentops_console.records.store import open_store

    with open_store(db, writer=True, create=True):
        line = error(6, "import", str(records_file))
    assert "is already being written by another process" in line
    assert ok("import", str(records_file)).exit_code == 0


def test_default_path_is_next_to_the_governance_db(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, records_file: Path
) -> None:
    monkeypatch.delenv("AGENTOPS_RECORDS", raising=False)
    monkeypatch.setenv("AGENTOPS_DB", str(tmp_path / "gov" / "governance.db"))
    ok("import", str(records_file))
    assert (tmp_path / "gov" / "records.db").is_file()
