"""The audit key and checkpoints through the real CLI: where `init` puts the key, what
verify says without it, and what `audit checkpoint` writes."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from agentops_console.cli.main import app


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "gov.db"
    monkeypatch.setenv("AGENTOPS_DB", str(path))
    monkeypatch.setenv("AGENTOPS_OPERATOR", "admin")
    return path


def run(*args: str) -> Result:
    result = CliRunner().invoke(app, list(args))
    assert "Traceback" not in result.stdout + result.stderr
    return result


def ok(*args: str) -> Result:
    result = run(*args)
    assert result.exit_code == 0, result.stderr
    return result


def test_init_creates_a_private_key_in_the_user_config_dir(db: Path) -> None:
    result = ok("init")
    key = Path(os.environ["XDG_CONFIG_HOME"]) / "agentops" / "audit.key"
    assert f"created the audit key {key}" in result.stderr
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert len(bytes.fromhex(key.read_text().strip())) == 32
    before = key.read_text()
    assert f"using the audit key {key}" in ok("init").stderr
    assert key.read_text() == before  # never replaced


def test_key_file_location_can_be_overridden(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = tmp_path / "secrets" / "gov.key"
    monkeypatch.setenv("AGENTOPS_AUDIT_KEY_FILE", str(key))
    ok("init")
    assert key.is_file() and not (Path(os.environ["XDG_CONFIG_HOME"]) / "agentops").exists()
    assert "intact: 1 rows" in ok("audit", "verify").stdout


def test_missing_key_is_one_line_and_exit_7(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok("init")
    ok("agent", "add", "a1", "--endpoint", "http://127.0.0.1:9")
    monkeypatch.setenv("AGENTOPS_AUDIT_KEY_FILE", str(tmp_path / "gone.key"))
    result = run("audit", "verify")
    assert result.exit_code == 7
    assert result.stdout.count("\n") == 1 and "gone.key is missing" in result.stdout
    assert json.loads(run("audit", "verify", "--json").stdout)["status"] == "no-key"
    write = run("agent", "add", "a2", "--endpoint", "http://127.0.0.1:9")
    assert write.exit_code == 7 and "gone.key is missing" in write.stderr
    assert not (tmp_path / "gone.key").exists()  # a keyed log never gets a new key silently
    assert ok("agent", "list", "--json").stdout.count('"name"') == 1  # reads still work
    cp = run("audit", "checkpoint")
    assert cp.exit_code == 7 and "cannot be signed" in cp.stderr


def test_corrupt_key_file_is_one_line(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok("init")
    bad = tmp_path / "bad.key"
    bad.write_text("not hex\n")
    monkeypatch.setenv("AGENTOPS_AUDIT_KEY_FILE", str(bad))
    result = run("audit", "verify")
    assert result.exit_code == 7 and "is not an audit key" in result.stderr


def test_checkpoint_to_stdout_then_verify_against_it(db: Path, tmp_path: Path) -> None:
    ok("init")
    ok("agent", "add", "a1", "--endpoint", "http://127.0.0.1:9")
    result = ok("audit", "checkpoint")
    data = json.loads(result.stdout)
    assert data["format"] == "agentops-audit-checkpoint/1"
    assert data["rows"] == data["last_seq"] == 2 and data["keyed_from"] == 1
    assert len(data["hmac"]) == 64 and "checkpoint of 2 audit rows" in result.stderr
    path = tmp_path / "cp.json"
    path.write_text(result.stdout)
    ok("agent", "add", "a2", "--endpoint", "http://127.0.0.1:9")  # the log may grow
    verified = ok("audit", "verify", "--checkpoint", str(path))
    assert "intact: 3 rows (matches the checkpoint of" in verified.stdout


def test_no_checkpoint_of_a_broken_log_and_no_junk_checkpoints(db: Path, tmp_path: Path) -> None:
    ok("init")
    junk = tmp_path / "junk.json"
    junk.write_text("{not json")
    result = run("audit", "verify", "--checkpoint", str(junk))
    assert result.exit_code == 2 and "junk.json: not a checkpoint" in result.stderr
    junk.write_text(json.dumps({"format": "agentops-audit-checkpoint/1", "rows": "7"}))
    assert run("audit", "verify", "--checkpoint", str(junk)).exit_code == 2
    assert run("audit", "verify", "--checkpoint", str(tmp_path / "none.json")).exit_code == 2
    conn = sqlite3.connect(db)
    conn.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 1")
    conn.commit()
    conn.close()
    refused = run("audit", "checkpoint", "--out", str(tmp_path / "cp.json"))
    assert refused.exit_code == 1 and "fails verify" in refused.stderr
    assert not (tmp_path / "cp.json").exists()
