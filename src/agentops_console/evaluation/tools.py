"""Where a tool's answer comes from during an evaluation: live tools or a recording.

A target calls its tools through `ctx.tools.call(name, arguments, run=implementation)`.
The call is always guarded exactly as in production (`session.tool_call`: kill, budgets,
Cedar, checkpoints); only the body differs by provider. `eval run` uses `LiveTools`, which
runs the implementation the target passed; replay (part 2) plugs in a provider that
answers from the recorded session and never runs `run`. A provider that cannot answer
raises `ToolUnavailable`, which the agent sees like any tool error.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..runtime import Session
    from .suite import Case

#: A tool implementation: called with the arguments (a dict is passed as keywords).
ToolImpl = Callable[..., Any]


class ToolUnavailable(RuntimeError):
    """The provider has no answer for this call (in replay: not in the recording)."""


class ToolProvider(Protocol):
    """Answers one guarded tool call (runs only after the guard allowed it)."""

    def answer(self, case: Case, tool: str, arguments: Any, run: ToolImpl | None) -> Any: ...


class LiveTools:
    """Production behaviour: the implementation the target passed runs."""

    def answer(self, case: Case, tool: str, arguments: Any, run: ToolImpl | None) -> Any:
        if run is None:
            raise ToolUnavailable(f"{tool}: the target passed no implementation (run=...)")
        if isinstance(arguments, dict):
            return run(**arguments)
        return run() if arguments is None else run(arguments)


class Toolbox:
    """The tools of one case's session, guarded, with answers from the provider."""

    def __init__(self, session: Session, case: Case, provider: ToolProvider) -> None:
        self.session = session
        self.case = case
        self.provider = provider

    def call(self, name: str, arguments: Any = None, *, run: ToolImpl | None = None) -> Any:
        """Guarded call (sync); raises GuardError when refused, the tool's error when it fails."""
        with self.session.tool_call(name, arguments) as call:
            output = self.provider.answer(self.case, name, arguments, run)
            call.output = output
        return output

    async def acall(self, name: str, arguments: Any = None, *, run: ToolImpl | None = None) -> Any:
        """Guarded call for asyncio targets; `run` may be a coroutine function."""
        async with self.session.tool_call(name, arguments) as call:
            output = self.provider.answer(self.case, name, arguments, run)
            if inspect.isawaitable(output):
                output = await _awaited(output)
            call.output = output
        return output


async def _awaited(value: Awaitable[Any]) -> Any:
    return await value
