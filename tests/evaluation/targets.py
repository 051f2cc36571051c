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
