"""A real runtime on loopback for the framework tests: a policy that denies one tool and
sends identity changes to a human, and helpers that act as the operator over HTTP."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from agentops_console.protocol.client import AgentClient
from agentops_console.protocol.models import ApprovalDecision
from agentops_console.runtime import Runtime, ToolSpec

TOKEN = "integrations-token"

POLICY = """
@id("tools")
permit (principal, action == Action::"call_tool", resource is Tool);

@id("no-account-deletion")
forbid (principal, action == Action::"call_tool", resource == Tool::"delete_account");

@id("identity-change-needs-human-approval")
@approval("required")
forbid (principal, action == Action::"call_tool", resource)
when { resource.category == "identity" }
unless { context.human_approved };
"""

#: Usage every fake model reports per call: 1,200 prompt tokens of which 1,000 cached,
#: 60 completion tokens of which 20 reasoning.
INPUT, CACHED, OUTPUT, REASONING = 1_200, 1_000, 60, 20
MODEL = "gpt-4o-mini"


@dataclass
class Served:
    rt: Runtime
    client: AgentClient
    ran: list[str] = field(default_factory=list)  # tool bodies that ran, in order

    def kill_running(self) -> None:
        """The operator kills every running session from the endpoint."""
        for summary in self.client.sessions():
            if summary.status == "running":
                self.client.kill(summary.id, "ops@example.com", "test kill")

    def approve_when_asked(self) -> threading.Thread:
        """The operator approves the first checkpoint over HTTP, from another thread."""

        def run() -> None:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                pending = self.client.approvals()
                if pending:
                    decision = ApprovalDecision(decision="approve", operator="ops@example.com")
                    self.client.decide(pending[0].id, decision)
                    return
                time.sleep(0.02)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    def only_session(self) -> str:
        [summary] = self.client.sessions()
        return summary.id


@pytest.fixture
def served() -> Iterator[Served]:
    rt = Runtime(
        "helpdesk",
        "1.0",
        token=TOKEN,
        policy=POLICY,
        tools=[
            ToolSpec("kb_search", read_only=True),
            ToolSpec("reset_password", category="identity"),
        ],
    )
    url = rt.start(host="127.0.0.1", port=0)
    with AgentClient(url, TOKEN) as client:
        yield Served(rt, client)
    rt.stop()


def expected_cost(calls: int) -> float:
    """gpt-4o-mini: $0.15 input, $0.075 cached input, $0.60 output per million tokens."""
    per_call = (INPUT - CACHED) * 0.15e-6 + CACHED * 0.075e-6 + OUTPUT * 0.60e-6
    return calls * per_call


Tool = Callable[[str], str]
