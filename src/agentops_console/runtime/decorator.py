"""`@rt.tool(...)`: guard a tool function without touching its body.

The call's arguments (bound to the function's signature) are what the policy and the
retry counter see; the return value becomes the span's output.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from .session import Session, current_session

if TYPE_CHECKING:
    from .core import Runtime

F = TypeVar("F", bound=Callable[..., Any])


def _session_for(kwargs: dict[str, Any], tool: str) -> Session:
    session = kwargs.pop("session", None) or current_session.get()
    if session is None:
        raise RuntimeError(
            f"tool {tool} called outside a session: use `with rt.session(...)` or pass session="
        )
    return cast(Session, session)


def guarded(runtime: Runtime, tool: str, func: F) -> F:
    signature = inspect.signature(func)

    def arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError:
            return {"args": list(args), **kwargs}
        bound.apply_defaults()
        return dict(bound.arguments)

    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            session = _session_for(kwargs, tool)
            async with session.tool_call(tool, arguments(args, kwargs)) as call:
                result = await func(*args, **kwargs)
                call.output = result
                return result

        return cast(F, async_wrapper)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        session = _session_for(kwargs, tool)
        with session.tool_call(tool, arguments(args, kwargs)) as call:
            result = func(*args, **kwargs)
            call.output = result
            return result

    return cast(F, wrapper)
