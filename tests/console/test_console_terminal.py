"""The real `agentops console` in a pseudo-terminal, against a hostile agent: every view
and every modal is opened, and the bytes the console wrote to its terminal must hold none
of the agent's escape sequences (window title, clipboard, hyperlink, DCS, clear screen,
bidi override). Rendered cells can look clean while the terminal still got the bytes,
so this reads what the terminal reads."""

from __future__ import annotations

import fcntl
import os
import re
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

from agentops_console.governance.db import open_db

from .agents import TOKEN, TOKEN_ENV
from .hostile import RAW, RUNBOOK, hostile_agent

COLUMNS, ROWS = 160, 45
AGENTOPS = Path(sys.executable).with_name("agentops")


class Terminal:
    """A pty with a reader thread keeping every byte the program wrote."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        self.master = master
        self.output = bytearray()
        self._views: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
        )
        os.close(slave)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO once the program has exited
                return
            if not chunk:
                return
            with self._lock:
                self.output += chunk

    def mark(self) -> int:
        with self._lock:
            return len(self.output)

    def wait_for(self, pattern: bytes, since: int, timeout: float = 30.0) -> bytes:
        """Until `pattern` (a regex) was written after offset `since`; returns what matched.
        A condition, never a fixed sleep."""
        compiled = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                found = compiled.search(self.output, since)
            if found is not None:
                return found.group()
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = bytes(self.output[-2000:])
                raise AssertionError(f"{pattern!r} never shown ({self.proc.poll()}): {tail!r}")
            time.sleep(0.02)

    def press(self, key: str, then_shows: str) -> None:
        """The key, then wait for `then_shows`: text, or `view:<name>` for the status bar's
        view name in its own colours, which it has only when no modal dims the view
        (so after closing a modal the next key cannot land on the modal)."""
        since = self.mark()
        os.write(self.master, key.encode())
        if not then_shows.startswith("view:"):
            self.wait_for(re.escape(then_shows.encode()), since)
            return
        view = then_shows[5:]
        if view in self._views:  # the undimmed label as first drawn
            self.wait_for(re.escape(self._views[view]), since)
        else:
            label = rb"\x1b\[[0-9;]*m " + view.encode() + rb" \x1b\[0m"
            self._views[view] = self.wait_for(label, since)

    def close(self) -> None:
        if self.proc.poll() is None:
            os.write(self.master, b"q")
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._reader.join(10)
        os.close(self.master)


#: Escape as a complete (kitty protocol) sequence: a lone ESC byte followed soon by the
#: next key would be read as alt+key.
ESC = "\x1b[27u"
FLEET, SESSIONS, ALERTS, APPROVALS, DETAIL = (
    f"view:{view}" for view in ("fleet", "sessions", "alerts", "approvals", "session")
)
#: (key, text that shows it worked): every view, and every modal from where it opens.
STEPS = [
    ("2", SESSIONS),  # sessions
    ("b", "Change budget on"),
    (ESC, SESSIONS),
    ("k", "Kill session"),
    (ESC, SESSIONS),
    ("d", "Disable workflow"),
    (ESC, SESSIONS),
    ("e", "Enable workflow"),
    (ESC, SESSIONS),
    ("\r", DETAIL),  # session detail, its spans fetched
    ("b", "Change budget on"),
    (ESC, DETAIL),
    ("3", ALERTS),  # alerts
    ("i", "Open incident"),
    (ESC, ALERTS),
    ("r", "Runbook: Any flag"),
    (ESC, ALERTS),
    ("4", APPROVALS),  # approvals
    ("a", "Approve tool call"),
    (ESC, APPROVALS),
    ("x", "Deny tool call"),
    (ESC, APPROVALS),
    ("?", "binding id"),  # help
    (ESC, APPROVALS),
    (":", "view"),  # jump
    (ESC, APPROVALS),
    ("1", FLEET),  # fleet
    ("b", "Change budget on"),
    (ESC, FLEET),
]


def test_no_agent_escape_sequence_reaches_the_operators_terminal(tmp_path: Path) -> None:
    db = tmp_path / "gov.db"
    open_db(db, create=True).close()
    books = tmp_path / "runbooks"
    books.mkdir()
    (books / "any-flag.md").write_text(RUNBOOK)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "TERM": "xterm-256color",
        "COLUMNS": str(COLUMNS),
        "LINES": str(ROWS),
        "LANG": "C.UTF-8",
        "AGENTOPS_RUNBOOKS": str(books),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        TOKEN_ENV: TOKEN,
    }
    with hostile_agent() as rt:
        assert rt.url is not None
        argv = [str(AGENTOPS), "console", "--endpoint", rt.url, "--token-env", TOKEN_ENV]
        terminal = Terminal([*argv, "--db", str(db), "--as", "alice"], env)
        stuck: AssertionError | None = None
        try:
            terminal.wait_for(rb"approvals 1 ", 0, timeout=60)  # the hostile snapshot is in
            for key, shows in STEPS:
                terminal.press(key, shows)
        except AssertionError as exc:
            stuck = exc  # a leak, if any, is the failure to report
        finally:
            terminal.close()
    out = bytes(terminal.output)
    leaked = [raw for raw in RAW if raw in out]
    assert not leaked, leaked
    if stuck is not None:
        raise stuck
    # the hostile text was on screen, visibly escaped, in the views and modals
    for shown in (b"\\x1b]2;HOSTILE-TITLE\\x07", b"\\u202eHOSTILE-BIDI", b"\\x9b2JHOSTILE-C1"):
        assert shown in out, shown
