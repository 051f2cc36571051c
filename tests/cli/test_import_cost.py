"""`agentops --help` must stay fast: no heavy library loads until a command needs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.governance.gov_fixtures import new_db, propose_fixture, register

HEAVY = ("sqlite_utils", "httpx", "pydantic", "textual", "cedarpy", "sqlite3", "tomli_w")

_PROBE = """
import json, sys
from agentops_console.cli.main import app
try:
    app(sys.argv[1:], standalone_mode=False)
except SystemExit:
    pass
print(json.dumps(sorted(m for m in sys.modules)), file=sys.stderr)
"""


def _loaded(*args: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    modules = json.loads(done.stderr.strip().splitlines()[-1])
    return {m.split(".")[0] for m in modules}


def test_help_imports_no_heavy_library() -> None:
    loaded = _loaded("--help")
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_subcommand_help_imports_no_heavy_library() -> None:
    # Typer 0.29 itself loads pydantic to coerce a sub-command's parameters, so only the
    # libraries our own modules could pull in are checked here.
    ours = set(HEAVY) - {"pydantic"}
    for group in (["release", "--help"], ["audit", "verify", "--help"], ["signoff", "--help"]):
        loaded = _loaded(*group)
        assert not loaded & ours, (group, sorted(loaded & ours))


def test_probe_can_see_heavy_imports() -> None:
    """The guard is real: a command that opens the DB does load sqlite3."""
    assert "sqlite3" in _loaded("agent", "list", "--db", "/nonexistent/dir/x.db")


def test_release_check_uses_stored_policy_facts(tmp_path: Path) -> None:
    """The gate reads the facts derived at propose time instead of loading Cedar."""
    gdb = new_db(tmp_path)
    register(gdb)
    propose_fixture(gdb, "it-support-1.3.2.toml", "1.3.2")
    gdb.close()
    db = str(tmp_path / "gov.db")
    loaded = _loaded("release", "check", "it-support", "1.3.2", "--db", db)
    assert "sqlite3" in loaded and "cedarpy" not in loaded
