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
    return make_project(tmp_path, monkeypatch)


def make_project(root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The `project` fixture's work, for fixtures of a wider scope too."""
    shutil.copytree(PROJECT_ROOT / "rubrics", root / "rubrics")
    (root / "fixtures" / "evals").mkdir(parents=True)
    shutil.copy(SUITE, root / "fixtures" / "evals" / "it-support.toml")
    monkeypatch.setenv("AGENTOPS_DB", str(root / "gov.db"))
    monkeypatch.setenv("AGENTOPS_RECORDS", str(root / "records.db"))
    monkeypatch.setenv("AGENTOPS_OPERATOR", "admin")
    monkeypatch.setenv("AGENTOPS_RUBRICS", str(root / "rubrics"))
    monkeypatch.setenv("AGENTOPS_RUNBOOKS", str(PROJECT_ROOT / "runbooks"))
    ok("init")
    ok(
        "agent", "add", "it-support", "--endpoint", "http://127.0.0.1:9", "--token-env", "IT",
        "--tenant", "acme", "--workflow", "password-reset",
    )  # fmt: skip
    for role, person in OWNERS.items():
        ok("owner", "set", "it-support", role, person)
    return root


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
