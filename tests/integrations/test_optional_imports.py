"""The integrations are extras: the runtime never imports a framework."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_runtime_imports_no_framework() -> None:
    code = (
        "import sys, agentops_console.runtime, agentops_console.integrations;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('langchain_core', 'langgraph', 'agents', 'pydantic_ai', 'openai')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
