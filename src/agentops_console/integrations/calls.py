"""Guarded tool calls held open between a framework's start and end callbacks.

Frameworks announce a tool in one callback and report its result in another; the guard
(`ToolCall`) is a context manager. This keeps each call entered from the start callback,
where a refusal raises before the tool body runs, to the end callback that closes it.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from typing import Any

from ..runtime import Session, ToolCall

#: Calls open at once at most; a framework that never reports an end cannot grow this.
OPEN_CALLS_MAX = 10_000


class OpenCalls:
    def __init__(self) -> None:
        self._calls: dict[Hashable, ToolCall] = {}
        self._lock = threading.Lock()

    def _keep(self, key: Hashable, call: ToolCall) -> None:
        with self._lock:
            if len(self._calls) >= OPEN_CALLS_MAX:
                stale = next(iter(self._calls))
                self._calls.pop(stale).__exit__(None, None, None)
            self._calls[key] = call

    def start(self, key: Hashable, session: Session, name: str, arguments: Any) -> ToolCall:
        """Run the guard; a `GuardError` propagates and the call is recorded as refused.
        A human checkpoint blocks this thread until it is answered."""
        call = session.tool_call(name, arguments)
        call.__enter__()
        self._keep(key, call)
        return call

    async def start_async(
        self, key: Hashable, session: Session, name: str, arguments: Any
    ) -> ToolCall:
        """As `start`, waiting for a checkpoint without blocking the event loop."""
        call = session.tool_call(name, arguments)
        await call.__aenter__()
        self._keep(key, call)
        return call

    def end(self, key: Hashable, output: Any = None, error: BaseException | None = None) -> None:
        with self._lock:
            call = self._calls.pop(key, None)
        if call is None:
            return
        if error is None:
            call.output = output
            call.__exit__(None, None, None)
        else:
            call.__exit__(type(error), error, error.__traceback__)
