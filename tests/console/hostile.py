"""A real runtime whose agent text is hostile everywhere the console shows agent text.

Each terminal-control family carries a marker no real output contains, so a test can
tell a hostile sequence that got through from the console's (or Textual's) own escapes:
`RAW` lists the byte strings that must never reach the terminal.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from agentops_console.protocol.models import FLAG_KINDS, ApprovalDecision
from agentops_console.runtime import GuardError, Runtime

from .agents import running

PAYLOAD = (
    "\x1b]2;HOSTILE-TITLE\x07"  # OSC 2, BEL-terminated: the window title
    "\x1b]52;c;SE9TVElMRQ==\x1b\\"  # OSC 52, ST-terminated: the clipboard
    "\x1b]8;;http://hostile.example/\x1b\\HOSTILE-LINK\x1b]8;;\x1b\\"  # OSC 8 hyperlink
    "\x1bPHOSTILE-DCS\x1b\\"  # DCS
    "\x1b_HOSTILE-APC\x1b\\\x1b^HOSTILE-PM\x1b\\\x1bXHOSTILE-SOS\x1b\\"  # APC, PM, SOS
    "\x1b[2JHOSTILE-CLEAR"  # CSI: clear the screen
    "\x9b2JHOSTILE-C1\x9d2;HOSTILE-C1\x9c"  # 8-bit CSI / OSC / ST
    "\u202eHOSTILE-BIDI\u2066\u200f\u200b"  # bidi override, isolate, mark; zero-width
    "\r\nHOSTILE-LINE\x08\x7f\x07"  # C0 and DEL
)
#: What must never appear in the bytes the console writes to its terminal.
RAW = (
    b"\x1b]2;HOSTILE",
    b"\x1b]52;",
    b"\x1b]8;;http://hostile",
    b"\x1bPHOSTILE",
    b"\x1b_HOSTILE",
    b"\x1b^HOSTILE",
    b"\x1bXHOSTILE",
    b"\x1b[2JHOSTILE",
    "\u009b".encode(),
    "\u009d".encode(),
    "\u202e".encode(),
    "\u2066".encode(),
    "\u200f".encode(),
    b"\rHOSTILE-LINE",
)
NAME = "agent" + PAYLOAD
BIG = "B" * 100_000  # a 100 KB principal and argument
RUNBOOK = f"""+++
name = "any-flag"
title = "Any flag"
triggers = {list(FLAG_KINDS)!r}
severity = "high"
owner_role = "operations"
+++
# Any flag

1. Look at the session.
"""


@contextmanager
def hostile_agent() -> Iterator[Runtime]:
    """Sessions, flags, a killed session, a disabled workflow and a pending approval,
    every string the agent chooses carrying PAYLOAD (or 100 KB)."""
    with running(NAME, approval_timeout_s=120) as rt:
        looping = rt.session(
            workflow="wf" + PAYLOAD, principal="pr" + PAYLOAD, session_id="loop" + PAYLOAD
        )
        for _ in range(5):  # runaway_loop and policy_denied flags quoting the tool name
            with contextlib.suppress(GuardError), looping.tool_call("tool" + PAYLOAD, {"q": 1}):
                pass
        rt.session(workflow="wf" + PAYLOAD, principal=BIG, session_id="big" + PAYLOAD)
        rt.session(workflow="wf" + PAYLOAD, principal="pr", session_id="killed" + PAYLOAD)
        rt.kill("killed" + PAYLOAD, "op" + PAYLOAD, "why" + PAYLOAD)
        rt.disable_workflow("off" + PAYLOAD, "op" + PAYLOAD, "reason" + PAYLOAD)

        def wait_for_a_human() -> None:
            session = rt.session(
                workflow="wf" + PAYLOAD, principal="pr" + PAYLOAD, session_id="ap" + PAYLOAD
            )
            arguments = {"user" + PAYLOAD: "u" + PAYLOAD, "big": BIG}
            with contextlib.suppress(GuardError), session.tool_call("reset_password", arguments):
                pass

        waiting = threading.Thread(target=wait_for_a_human, daemon=True)
        waiting.start()
        deadline = time.monotonic() + 30
        while not rt.pending_approvals():
            assert time.monotonic() < deadline, "no pending approval"
            time.sleep(0.01)
        try:
            yield rt
        finally:
            for approval in rt.pending_approvals():
                rt.decide_approval(approval.id, ApprovalDecision(decision="deny", operator="t"))
            waiting.join(10)
