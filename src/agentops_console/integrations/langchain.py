"""LangChain and LangGraph: kill, disable, budgets, Cedar and checkpoints before a tool runs.

LangChain's callback manager swallows an exception raised in a handler (it logs "Error in
... callback" and runs the tool anyway) unless the handler sets `raise_error = True`; then
the exception propagates out of `on_tool_start`, which `BaseTool.run` / `arun` call before
the tool body, out of LangGraph's `ToolNode` (its default error handler re-raises anything
but argument errors) and out of `invoke`. So this handler runs the runtime's guard there:
`SessionKilled`, `PolicyDenied` and `BudgetExceeded` reach the caller of `invoke` and the
tool body never runs. LLM calls are checked before they start and recorded, with usage
and cost, from the message's `usage_metadata` when they end.

```python
handler = AgentOpsCallbackHandler(runtime=rt, workflow="it-support", principal="user-1")
graph.invoke({"messages": [...]}, config={"callbacks": [handler]})
```

With `runtime=`, each top-level run is one session; with `session=`, every run goes into
that session (opened and ended by the caller).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.outputs import LLMResult

from ..runtime import GuardError, Runtime, Session
from .calls import OpenCalls

log = logging.getLogger(__name__)

#: Runs tracked at once at most (LLM starts, run-to-root links); never-ended ones go first.
_RUNS_MAX = 10_000


class AgentOpsCallbackHandler(BaseCallbackHandler):
    """A LangChain callback handler that guards tools and records LLM usage."""

    raise_error = True  # without it LangChain logs a refusal and runs the tool anyway

    def __init__(
        self,
        session: Session | None = None,
        *,
        runtime: Runtime | None = None,
        workflow: str | None = None,
        principal: str = "unknown",
        tenant: str | None = None,
    ) -> None:
        if (session is None) == (runtime is None):
            raise ValueError("give either session= (one session) or runtime= (one per run)")
        self.session = session
        self.runtime = runtime
        self.workflow = workflow
        self.principal = principal
        self.tenant = tenant
        self._calls = OpenCalls()
        self._lock = threading.Lock()
        self._root: dict[UUID, UUID] = {}  # run -> its top-level run
        self._sessions: dict[UUID, Session] = {}  # top-level run -> its session
        self._llm: dict[UUID, tuple[float, str | None, str | None]] = {}

    # -- sessions --------------------------------------------------------------------
    def _session_for(self, run_id: UUID, parent_run_id: UUID | None) -> Session | None:
        if self.session is not None:
            return self.session
        with self._lock:
            root = run_id if parent_run_id is None else self._root.get(parent_run_id, parent_run_id)
            if len(self._root) >= _RUNS_MAX:
                del self._root[next(iter(self._root))]
            self._root[run_id] = root
            return self._sessions.get(root)

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        if self.runtime is None or parent_run_id is not None:
            self._session_for(run_id, parent_run_id)
            return
        name = kwargs.get("name") or (serialized or {}).get("name") or "langchain"
        session = self.runtime.session(
            self.workflow or str(name), self.principal, tenant=self.tenant
        )
        with self._lock:
            self._sessions[run_id] = session
            self._root[run_id] = run_id

    def _end_root(self, run_id: UUID, error: BaseException | None) -> None:
        with self._lock:
            session = self._sessions.pop(run_id, None)
            if session is None:
                return
            for run in [r for r, root in self._root.items() if root == run_id]:
                del self._root[run]
        if error is None:
            session.end()
        else:  # the session's own rules: a refusal, a kill, a crash each end it their way
            session.__exit__(type(error), error, error.__traceback__)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end_root(run_id, None)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end_root(run_id, error)

    # -- tools -----------------------------------------------------------------------
    def on_tool_start(
        self,
        serialized: dict[str, Any] | None,
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        session = self._session_for(run_id, parent_run_id)
        if session is None:
            return
        name = (serialized or {}).get("name") or kwargs.get("name") or "tool"
        self._calls.start(run_id, session, str(name), inputs if inputs is not None else input_str)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._calls.end(run_id, output=getattr(output, "content", output))

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._calls.end(run_id, error=error)

    # -- LLM calls -------------------------------------------------------------------
    def _llm_start(
        self, run_id: UUID, parent_run_id: UUID | None, metadata: dict[str, Any] | None
    ) -> None:
        session = self._session_for(run_id, parent_run_id)
        if session is None:
            return
        session.check()  # killed, disabled or over budget: the model is not called
        meta = metadata or {}
        with self._lock:
            if len(self._llm) >= _RUNS_MAX:
                del self._llm[next(iter(self._llm))]
            self._llm[run_id] = (time.time(), meta.get("ls_model_name"), meta.get("ls_provider"))

    def on_chat_model_start(
        self,
        serialized: dict[str, Any] | None,
        messages: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._llm_start(run_id, parent_run_id, metadata)

    def on_llm_start(
        self,
        serialized: dict[str, Any] | None,
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._llm_start(run_id, parent_run_id, metadata)

    def on_llm_end(
        self,
        response: LLMResult,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        with self._lock:
            started = self._llm.pop(run_id, None)
        session = self._session_for(run_id, parent_run_id)
        if session is None or started is None:
            return
        try:  # telemetry: a malformed response is recorded as best it can, never raised
            self._record_llm(session, response, *started)
        except GuardError:
            raise
        except Exception:
            log.warning("agentops: could not record an LLM call", exc_info=True)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        with self._lock:
            self._llm.pop(run_id, None)

    def _record_llm(
        self,
        session: Session,
        response: LLMResult,
        started: float,
        model: str | None,
        provider: str | None,
    ) -> None:
        usage = _usage(response)
        message_meta = _response_metadata(response)
        model = message_meta.get("model_name") or message_meta.get("model") or model
        llm_output = response.llm_output or {}
        model = model or llm_output.get("model_name") or "unknown"
        provider = message_meta.get("model_provider") or provider
        session.llm_call(
            str(model),
            provider=None if provider is None else str(provider),
            latency_ms=(time.time() - started) * 1000,
            enforce=False,
            **usage,
        )


def _messages(response: LLMResult) -> list[Any]:
    return [
        message
        for generations in response.generations
        for generation in generations
        if (message := getattr(generation, "message", None)) is not None
    ]


def _response_metadata(response: LLMResult) -> dict[str, Any]:
    for message in _messages(response):
        meta = getattr(message, "response_metadata", None)
        if isinstance(meta, dict) and meta:
            return meta
    return {}


def _usage(response: LLMResult) -> dict[str, Any]:
    """`llm_call` token arguments from LangChain's `usage_metadata` (inclusive counts, as
    ours), else from the provider's `token_usage` in `llm_output`."""
    totals = dict.fromkeys(
        ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"), 0
    )
    totals["reasoning_tokens"] = 0
    found = False
    for message in _messages(response):
        usage = getattr(message, "usage_metadata", None)
        if not usage:
            continue
        found = True
        details_in = usage.get("input_token_details") or {}
        details_out = usage.get("output_token_details") or {}
        totals["input_tokens"] += usage.get("input_tokens") or 0
        totals["output_tokens"] += usage.get("output_tokens") or 0
        totals["cache_read_tokens"] += details_in.get("cache_read") or 0
        totals["cache_write_tokens"] += details_in.get("cache_creation") or 0
        totals["reasoning_tokens"] += details_out.get("reasoning") or 0
    if not found:
        token_usage = (response.llm_output or {}).get("token_usage") or {}
        totals["input_tokens"] = token_usage.get("prompt_tokens") or 0
        totals["output_tokens"] = token_usage.get("completion_tokens") or 0
    return totals
