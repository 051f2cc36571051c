"""A governance DB that can only be read: a read-only file, directory or filesystem.
Reads work, a change is refused in one line (exit 6), and nothing says "not SQLite".

Tests run as root here, where chmod stops nothing (root writes a 0444 file). So as root
the file or directory is made immutable (`chattr +i`, which binds root too) and the
read-only filesystem is a read-only bind mount in a private mount namespace
(`unshare -m`); as another user plain chmod does. Where neither works the test skips.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from agentops_console.cli.main import app
from agentops_console.governance import migrations
from tests.governance.gov_fixtures import new_db, propose_fixture, register

AGENTOPS = str(Path(sys.executable).parent / "agentops")
READS = (
    ("agent", "list"),
    ("agent", "show", "it-support"),
    ("owner", "list"),
    ("release", "list"),
    ("release", "show", "it-support", "1.3.2"),
    ("incident", "list"),
    ("report",),
    ("audit", "list"),
    ("audit", "verify"),
)


@contextmanager
def read_only(*paths: Path) -> Iterator[None]:
    """Make `paths` read-only for this process, whoever it runs as; undone afterwards."""
    if os.geteuid() == 0:
        if shutil.which("chattr") is None:
            pytest.skip("root without chattr: nothing makes a file read-only for root")
        for path in paths:
            done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
            if done.returncode != 0:
                pytest.skip(f"chattr +i not supported here: {done.stderr.decode().strip()}")
        try:
            yield
        finally:
            for path in paths:
                subprocess.run(["chattr", "-i", str(path)], check=False)
    else:
        modes = {p: p.stat().st_mode for p in paths}
        for path in paths:
            path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            for path, mode in modes.items():
                path.chmod(mode)


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "dbdir"
    home.mkdir()
    monkeypatch.setenv("AGENTOPS_DB", str(home / "gov.db"))
    monkeypatch.setenv("AGENTOPS_OPERATOR", "admin")
    gdb = new_db(home)
    register(gdb)
    propose_fixture(gdb, "it-support-1.3.2.toml", "1.3.2")
    gdb.close()  # a clean close leaves no -wal / -shm beside the file
    assert sorted(p.name for p in home.iterdir()) == ["gov.db"]
    return home / "gov.db"


def run(*args: str) -> Result:
    result = CliRunner().invoke(app, list(args))
    assert "Traceback" not in result.stdout + result.stderr
    assert "not SQLite" not in result.stderr
    return result


def _reads_work_and_writes_are_refused(db: Path) -> None:
    for args in READS:
        result = run(*args)
        assert result.exit_code == 0, (args, result.stderr)
    gate = run("release", "check", "it-support", "1.3.2")
    assert gate.exit_code == 1 and "not ready" in gate.stdout  # the gate still answers
    write = run("owner", "set", "it-support", "security", "mallory")
    assert write.exit_code == 6
    assert write.stderr.startswith(f"agentops: error: {db} is read-only (")
    assert write.stderr.count("\n") == 1 and "nothing was changed" in write.stderr


def test_read_only_file(db: Path) -> None:
    with read_only(db):
        _reads_work_and_writes_are_refused(db)
    assert run("owner", "set", "it-support", "security", "sally").exit_code == 0


def test_read_only_directory(db: Path) -> None:
    with read_only(db.parent):
        _reads_work_and_writes_are_refused(db)
        assert sorted(p.name for p in db.parent.iterdir()) == ["gov.db"]


def test_read_only_directory_refuses_a_new_db(db: Path) -> None:
    with read_only(db.parent):
        result = run("init", "--db", str(db.parent / "new.db"))
        assert result.exit_code == 6 and "its directory is read-only" in result.stderr


def test_read_only_old_schema_says_why_it_cannot_be_read(tmp_path: Path) -> None:
    old = tmp_path / "old.db"
    conn = sqlite3.connect(old, isolation_level=None)
    migrations.migrate(conn, target=5)
    conn.close()
    with read_only(old):
        result = run("agent", "list", "--db", str(old))
    assert result.exit_code == 6 and "old schema v5" in result.stderr


_RO_FS = """
set -e
mount --bind "$1" "$1"
mount -o remount,bind,ro "$1"
shift
"$@"
"""


def _on_read_only_fs(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", _RO_FS, "sh", str(directory), AGENTOPS, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_read_only_filesystem(db: Path) -> None:
    probe = _on_read_only_fs(db.parent, "--version")
    if shutil.which("unshare") is None or probe.returncode != 0:
        pytest.skip(f"no private mount namespace here: {probe.stderr.strip()}")
    for args in READS:
        done = _on_read_only_fs(db.parent, *args)
        assert done.returncode == 0, (args, done.stderr)
    write = _on_read_only_fs(db.parent, "agent", "remove", "it-support", "--yes")
    assert write.returncode == 6
    assert (
        write.stderr == f"agentops: error: {db} is read-only (read-only filesystem);"
        " nothing was changed\n"
    )
