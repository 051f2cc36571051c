"""Targets for the harness tests: misbehaving agents, through the real guarded session."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from agentops_console.evaluation.harness import CaseContext
from agentops_console.runtime import Session


def flaky(ctx: CaseContext, s: Session) -> dict[str, Any]:
    """Crashes on `crash`, hangs on `slow` (until the kill stops its next call), else works."""
    if ctx.id == "crash":
        raise RuntimeError("the agent fell over")
    if ctx.id == "slow":
        time.sleep(1.0)
        ctx.tools.call("kb_search", {"query": "after the deadline"}, run=lambda query: {})
        return {"answer": "too late", "outcome": "resolved"}
    ctx.tools.call("kb_search", {"query": ctx.input}, run=lambda query: {"hits": 1})
    s.outcome("resolved")
    return {"answer": "done"}


async def async_flaky(ctx: CaseContext, s: Session) -> dict[str, Any]:
    if ctx.id == "crash":
        raise RuntimeError("the async agent fell over")
    if ctx.id == "slow":
        await asyncio.sleep(5)
    await ctx.tools.acall("kb_search", {"query": ctx.input}, run=lambda query: {"hits": 1})
    return {"answer": "done", "outcome": "resolved"}


NOT_CALLABLE = 42


#: Live tool bodies that would have run in a replay (there must be none).
LIVE_CALLS: list[str] = []
UNRECORDED = "export_data"


def _live(name: str) -> Any:
    def body(**arguments: Any) -> Any:
        LIVE_CALLS.append(name)
        raise AssertionError(f"live tool {name} called in a replay")

    return body


def replay_prober(ctx: CaseContext, s: Session) -> dict[str, Any]:
    """The 1.5.1 demo agent with live tools that fail loudly, plus a call no recording has;
    it returns the error it saw as its answer."""
    from agentops_console.demo import targets
    from agentops_console.evaluation.tools import ToolUnavailable

    agent = targets._Agent(ctx, s, targets.Behaviour("1.5.1"))
    agent.backend = type("Live", (), {n: staticmethod(_live(n)) for n in dir(targets.Backend)
                                      if not n.startswith("_")})()  # fmt: skip
    agent.run()
    try:
        arguments = {"tenant": "acme", "region": "eu-west-1", "dataset": "never-recorded"}
        ctx.tools.call(UNRECORDED, arguments, run=_live(UNRECORDED))
    except ToolUnavailable as exc:
        return {"answer": str(exc)}
    return {"answer": "the unrecorded call was answered"}
