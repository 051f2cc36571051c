"""What a watcher loads before it watches: every import is paid on each (re)start, so the
kill -9 test (twenty restarts) and a real restart after a crash feel each one."""

from __future__ import annotations

import subprocess
import sys

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
