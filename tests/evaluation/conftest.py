"""A real governance DB in tmp_path with it-support registered, its owners, and the
fixture releases; the CLI runs against it through Typer's CliRunner."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from agentops_console.cli.main import app
from agentops_console.governance.paths import PROJECT_ROOT

POLICY = PROJECT_ROOT / "fixtures" / "policies" / "it-support.cedar"
RELEASES = PROJECT_ROOT / "fixtures" / "releases"
SUITE = PROJECT_ROOT / "fixtures" / "evals" / "it-support.toml"
OWNERS = {"product": "pat", "security": "sam", "platform": "pia", "applied-ai": "ali"}
OWNERS["operations"] = "ola"
TARGETS = "agentops_console.demo.targets"

Run = Callable[..., Result]


def run(*args: str | Path) -> Result:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result


def ok(*args: str | Path) -> Result:
    result = run(*args)
    assert result.exit_code == 0, result.stderr
    return result


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project copy: rubrics/ and fixtures/evals/ under tmp_path, so a test may change
    the suite the rubric names without touching the checkout."""
    shutil.copytree(PROJECT_ROOT / "rubrics", tmp_path / "rubrics")
    (tmp_path / "fixtures" / "evals").mkdir(parents=True)
    shutil.copy(SUITE, tmp_path / "fixtures" / "evals" / "it-support.toml")
    monkeypatch.setenv("AGENTOPS_DB", str(tmp_path / "gov.db"))
    monkeypatch.setenv("AGENTOPS_RECORDS", str(tmp_path / "records.db"))
    monkeypatch.setenv("AGENTOPS_OPERATOR", "admin")
    monkeypatch.setenv("AGENTOPS_RUBRICS", str(tmp_path / "rubrics"))
    monkeypatch.setenv("AGENTOPS_RUNBOOKS", str(PROJECT_ROOT / "runbooks"))
    ok("init")
    ok(
        "agent", "add", "it-support", "--endpoint", "http://127.0.0.1:9", "--token-env", "IT",
        "--tenant", "acme", "--workflow", "password-reset",
    )  # fmt: skip
    for role, person in OWNERS.items():
        ok("owner", "set", "it-support", role, person)
    return tmp_path


def propose(version: str, policy: Path = POLICY) -> None:
    ok(
        "release", "propose", "it-support", version, "--author", "dev",
        "--answers", RELEASES / f"it-support-{version}.toml", "--policy", policy,
    )  # fmt: skip


def sign_all(version: str) -> None:
    for person in OWNERS.values():
        ok("signoff", "it-support", version, "--approve", "--as", person)


def live(version: str) -> None:
    propose(version)
    sign_all(version)
    ok("release", "promote", "it-support", version)
