"""`agentops rollback --yes` prints the plan once, each step with what became of it, and
a failure shows how far it got (issue 13, item 11). A real runtime on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from agentops_console.cli.main import app
from agentops_console.governance.paths import PROJECT_ROOT
from agentops_console.runtime import Runtime

POLICY = str(PROJECT_ROOT / "fixtures" / "policies" / "it-support.cedar")
OWNERS = {"product": "pat", "security": "sam", "platform": "pia", "applied-ai": "ali"}
OWNERS["operations"] = "ola"


def ok(*args: str) -> Result:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.stderr
    return result


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    monkeypatch.setenv("AGENTOPS_DB", str(tmp_path / "gov.db"))
    monkeypatch.setenv("AGENTOPS_OPERATOR", "admin")
    monkeypatch.setenv("IT_TOKEN", "tok")
    rt = Runtime(agent="it-support", version="1.4.0", token="tok", workflows=["password-reset"])
    url = rt.start(host="127.0.0.1", port=0)
    ok("init")
    ok(
        "agent", "add", "it-support", "--endpoint", url, "--token-env", "IT_TOKEN",
        "--workflow", "password-reset", "--workflow", "data-export",
    )  # fmt: skip
    for role, person in OWNERS.items():
        ok("owner", "set", "it-support", role, person)
    for version in ("1.3.2", "1.4.0"):
        answers = str(PROJECT_ROOT / "fixtures" / "releases" / f"it-support-{version}.toml")
        ok("release", "propose", "it-support", version, "--answers", answers, "--policy", POLICY,
           "--author", "dev")  # fmt: skip
        for person in OWNERS.values():
            ok("signoff", "it-support", version, "--approve", "--as", person)
        ok("release", "promote", "it-support", version)
    ok("incident", "open", "it-support", "--summary", "drift after 1.4.0")
    yield rt
    rt.stop()


def numbered(stdout: str) -> list[str]:
    """The step lines, without their number and label."""
    return [line.split("] ", 1)[1] for line in stdout.splitlines() if line.startswith("  ")]


def test_yes_prints_the_plan_once_with_each_outcome(runtime: Runtime) -> None:
    dry = numbered(ok("rollback", "it-support", "--to", "1.3.2").stdout)
    done = ok("rollback", "it-support", "--to", "1.3.2", "--yes").stdout
    assert done.count("rollback it-support: 1.4.0 -> 1.3.2") == 1
    assert numbered(done) == dry  # the same steps, once each, in the same order
    assert len(dry) == len(set(dry))
    labels = [line.split("] ")[0].split("[")[1] for line in done.splitlines()[1:]]
    assert labels[:5] == ["done"] * 5 and set(labels[5:]) == {"you "}


def test_a_failed_step_shows_how_far_it_got(runtime: Runtime) -> None:
    runtime.stop()  # the endpoint is gone: the first automated step fails
    result = CliRunner().invoke(app, ["rollback", "it-support", "--to", "1.3.2", "--yes"])
    assert result.exit_code == 5, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1].startswith("   1. [failed] disable workflow password-reset")
    assert all("[not run]" in line for line in lines[2:]) and len(lines) > 5
    assert "agentops: error:" in result.stderr and "Traceback" not in result.stderr
