"""`agentops --help` must stay fast: no heavy library loads until a command needs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from agentops_console.cli.main import COMMAND_MODULES, COMMANDS
from tests.governance.gov_fixtures import new_db, propose_fixture, register

HEAVY = ("sqlite_utils", "httpx", "pydantic", "textual", "cedarpy", "sqlite3", "tomli_w")

_PROBE = """
import json, sys
from agentops_console.cli.main import app
try:
    app(sys.argv[1:], standalone_mode=False)
except (SystemExit, Exception):  # Click's usage errors, raised when not standalone
    pass
print(json.dumps(sorted(m for m in sys.modules)), file=sys.stderr)
"""


def _modules(*args: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


def _loaded(*args: str) -> set[str]:
    return {m.split(".")[0] for m in _modules(*args)}


def _command_modules(*args: str) -> set[str]:
    """The cli modules that define commands (not main, common or gov_common) loaded."""
    ours = {f"agentops_console.cli.{module}" for module, _ in COMMANDS.values()}
    ours |= set(COMMAND_MODULES)
    return {m.rsplit(".", 1)[1] for m in _modules(*args) & ours}


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


def test_help_imports_no_command_module() -> None:
    """The root lists its commands from its table; building them all cost as much as
    importing typer. Nothing of ours but the root loads for the help."""
    root = {"agentops_console", "agentops_console.cli", "agentops_console.cli.main"}
    for args in (["--help"], []):  # no arguments: the same help
        ours = {m for m in _modules(*args) if m.startswith("agentops_console")}
        assert ours == root, (args, sorted(ours - root))


def test_a_command_imports_only_the_module_that_defines_it() -> None:
    assert _command_modules("release", "--help") == {"gov_release"}
    assert _command_modules("sessions", "list", "--help") == {"sessions_cmds"}
    assert _command_modules("--version") == set()
    assert _command_modules("no-such-command") == set()


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
    # the CI gate runs on every build: it cleans text (protocol.text, standard library only)
    # but must not build the wire's pydantic models (40 ms of a 300 ms budget)
    modules = _modules("release", "check", "it-support", "1.3.2", "--db", db)
    assert "agentops_console.protocol.text" in modules
    assert "agentops_console.protocol.models" not in modules
