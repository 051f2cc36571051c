"""The examples run offline and show what they promise."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ..conftest import REPO

CASES = [
    ("langgraph_agent.py", ["refused: delete_account denied", "reset_password", "approved"]),
    ("openai_agents_agent.py", ["stopped: session", "killed"]),
    ("pydantic_ai_agent.py", ["refused: delete_account denied", "denied"]),
]


@pytest.mark.parametrize(("script", "shown"), CASES)
def test_example_runs(script: str, shown: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "examples" / script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for text in shown:
        assert text in done.stdout
