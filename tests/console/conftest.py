"""Fixtures the console's Pilot tests share: the agents' token and a governance DB."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentops_console.console.governance_adapter import GovernanceAdapter
from agentops_console.governance.db import open_db

from .agents import TOKEN, TOKEN_ENV


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
