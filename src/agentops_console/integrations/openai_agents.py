"""OpenAI Agents SDK: the guard in its run hooks, its traces as sessions.

The SDK awaits `RunHooks.on_tool_start` before it invokes a function tool and lets an
exception from it propagate out of `Runner.run`, so the runtime's guard runs there:
`SessionKilled`, `PolicyDenied` and `BudgetExceeded` reach the caller and the tool body
never runs (a checkpoint waits without blocking the event loop). `on_llm_start` refuses
the model call of a killed, disabled or over-budget session; `on_llm_end` records the
call's usage (cached input and reasoning tokens included) and cost.

```python
tracing = AgentOpsTracing(rt, principal="user-1")       # one session per SDK trace
agents.add_trace_processor(tracing)
await Runner.run(agent, "reset my password", hooks=AgentOpsHooks(tracing))
```

`AgentOpsTracing` maps each SDK trace (one `Runner.run`, or a `trace()` block around
several) to a session: the trace's `workflow_name` is the workflow, `metadata["principal"]`
(or `user_id`) the principal; the trace ending ends the session. Without it, pass a
session you opened yourself: `AgentOpsHooks(session=s)`.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from agents import RunHooks
from agents.exceptions import AgentsException
from agents.tracing import Span, Trace, TracingProcessor, get_current_trace

from ..runtime import GuardError, Runtime, Session
from .calls import OpenCalls

#: Traces open at once at most; the oldest is ended first (an SDK that never ends one).
_TRACES_MAX = 10_000


class AgentOpsTracing(TracingProcessor):
    """A trace processor that opens a session per trace and ends it with the trace."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        workflow: str | None = None,
        principal: str = "unknown",
        tenant: str | None = None,
    ) -> None:
        self.runtime = runtime
        self.workflow = workflow
        self.principal = principal
        self.tenant = tenant
        self._sessions: dict[str, Session] = {}
        self._errors: dict[str, BaseException] = {}
        self._lock = threading.Lock()

    def session_for(self, trace_id: str) -> Session | None:
        with self._lock:
            return self._sessions.get(trace_id)

    def note_error(self, trace_id: str, error: BaseException) -> None:
        """A refusal raised in this trace: the session ends the way that refusal means."""
        with self._lock:
            if trace_id in self._sessions:
                self._errors.setdefault(trace_id, error)

    def on_trace_start(self, trace: Trace) -> None:
        meta = getattr(trace, "metadata", None) or {}
        principal = meta.get("principal") or meta.get("user_id") or self.principal
        try:
            session = self.runtime.session(
                self.workflow or trace.name or "openai-agents", str(principal), tenant=self.tenant
            )
        except GuardError:
            return  # a disabled workflow: on_llm_start refuses the run (no session to guard)
        with self._lock:
            if len(self._sessions) >= _TRACES_MAX:
                oldest = next(iter(self._sessions))
                self._sessions.pop(oldest).end()
                self._errors.pop(oldest, None)
            self._sessions[trace.trace_id] = session

    def on_trace_end(self, trace: Trace) -> None:
        with self._lock:
            session = self._sessions.pop(trace.trace_id, None)
            error = self._errors.pop(trace.trace_id, None)
        if session is None:
            return
        if error is None:
            session.end()
        else:
            session.__exit__(type(error), error, error.__traceback__)

    def on_span_start(self, span: Span[Any]) -> None:
        pass

    def on_span_end(self, span: Span[Any]) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def force_flush(self) -> None:
        pass


class AgentOpsHooks(RunHooks[Any]):
    """Run hooks that guard every function tool and record every model call."""

    def __init__(
        self,
        tracing: AgentOpsTracing | None = None,
        *,
        session: Session | None = None,
        model: str | None = None,
        provider: str | None = "openai",
    ) -> None:
        if (tracing is None) == (session is None):
            raise ValueError("give either an AgentOpsTracing or session=")
        self.tracing = tracing
        self.fixed_session = session
        #: the model name to price with when the agent's model is an object, not a name
        self.model = model
        self.provider = provider
        self._calls = OpenCalls()

    def _session(self) -> tuple[Session | None, str | None]:
        if self.fixed_session is not None:
            return self.fixed_session, None
        trace = get_current_trace()
        if trace is None or self.tracing is None:
            return None, None
        return self.tracing.session_for(trace.trace_id), trace.trace_id

    def _refused(self, trace_id: str | None, error: GuardError) -> GuardError:
        if trace_id is not None and self.tracing is not None:
            self.tracing.note_error(trace_id, error)
        return surfaced(error)

    async def on_llm_start(
        self, context: Any, agent: Any, system_prompt: str | None, input_items: list[Any]
    ) -> None:
        session, trace_id = self._session()
        if session is None:
            return
        try:
            session.check()
        except GuardError as exc:
            raise self._refused(trace_id, exc) from None

    async def on_llm_end(self, context: Any, agent: Any, response: Any) -> None:
        session, _ = self._session()
        if session is None:
            return
        usage = response.usage
        model = agent.model if isinstance(agent.model, str) else self.model
        details_in, details_out = usage.input_tokens_details, usage.output_tokens_details
        session.llm_call(
            model or "unknown",
            usage.input_tokens,
            usage.output_tokens,
            cache_read_tokens=getattr(details_in, "cached_tokens", 0) or 0,
            cache_write_tokens=getattr(details_in, "cache_write_tokens", 0) or 0,
            reasoning_tokens=getattr(details_out, "reasoning_tokens", 0) or 0,
            provider=self.provider,
            enforce=False,
        )

    async def on_tool_start(self, context: Any, agent: Any, tool: Any) -> None:
        session, trace_id = self._session()
        if session is None:
            return
        name = getattr(context, "tool_name", None) or getattr(tool, "name", "tool")
        try:
            await self._calls.start_async(
                _call_key(context), session, str(name), _arguments(context)
            )
        except GuardError as exc:
            raise self._refused(trace_id, exc) from None

    async def on_tool_end(self, context: Any, agent: Any, tool: Any, result: object) -> None:
        self._calls.end(_call_key(context), output=result)


_SURFACED: dict[type[GuardError], type[GuardError]] = {}


def surfaced(error: GuardError) -> GuardError:
    """The same refusal as a subclass that is also the SDK's `AgentsException`: the SDK
    re-raises those as they are, where it wraps anything else in a `UserError`, so the
    caller of `Runner.run` can `except SessionKilled` / `PolicyDenied` as with the API."""
    kind = type(error)
    cls = _SURFACED.get(kind)
    if cls is None:
        cls = _SURFACED[kind] = type(kind.__name__, (kind, AgentsException), {})
    out = cls(*error.args)
    out.__traceback__ = error.__traceback__
    return out


def _call_key(context: Any) -> Any:
    return getattr(context, "tool_call_id", None) or id(context)


def _arguments(context: Any) -> Any:
    raw = getattr(context, "tool_arguments", None)
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw
