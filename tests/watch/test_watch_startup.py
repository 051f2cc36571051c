"""What a watcher loads before it watches: every import is paid on each (re)start, so the
kill -9 test (twenty restarts) and a real restart after a crash feel each one."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from agentops_console.watch.sinks.delivery import Notifier
from agentops_console.watch.sinks.spec import Sink

_LOADED = (
    "import sys\n"
    "{prelude}"
    "import agentops_console.watch.service, httpx\n"
    "assert callable(httpx.main)\n"
    "print(sorted(m for m in ('click', 'rich', 'pygments') if m in sys.modules))\n"
)


def _loaded(prelude: str) -> str:
    code = _LOADED.format(prelude=prelude)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_the_watcher_does_not_load_httpx_command_line() -> None:
    skip = "from agentops_console.cli.watch_cmds import skip_httpx_cli\nskip_httpx_cli()\n"
    assert _loaded("") == "['click', 'pygments', 'rich']"  # what httpx does by itself
    assert _loaded(skip) == "[]"


def test_http_sinks_load_no_ca_bundle(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each sink has a client of its own: with httpx's default each loaded the CA bundle
    (~0.15 s idle, over 1 s loaded). SSL_CERT_FILE pointing nowhere makes any load fail."""
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "no-such-bundle.pem"))
    sinks = [
        Sink(name=f"hook{i}", kind="webhook", url=f"http://127.0.0.1:9/{i}", render=dict)
        for i in range(3)
    ]

    async def build() -> None:
        async with Notifier(sinks):
            pass

    asyncio.run(build())
