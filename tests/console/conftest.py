"""Fixtures the console's Pilot tests share: the agents' token, a governance DB and a
running test agent (a module may define its own `rt`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agentops_console.console.governance_adapter import GovernanceAdapter
from agentops_console.governance.db import open_db
from agentops_console.runtime import Runtime

from .agents import TOKEN, TOKEN_ENV, running


@pytest.fixture
def agent_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """The token the test agents (`agents.running`) expect, where the console reads it."""
    monkeypatch.setenv(TOKEN_ENV, TOKEN)


@pytest.fixture
def gov(tmp_path: Path) -> GovernanceAdapter:
    """A fresh governance DB in the test's directory, as the console opens it."""
    path = tmp_path / "gov.db"
    open_db(path, create=True).close()
    return GovernanceAdapter(path)


@pytest.fixture
def rt() -> Iterator[Runtime]:
    """The test agent (`agents.running`), serving on loopback for the test."""
    with running() as runtime:
        yield runtime
