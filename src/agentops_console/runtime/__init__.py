"""The runtime library an agent process embeds.

```python
from agentops_console.runtime import Runtime, SessionKilled, PolicyDenied, BudgetExceeded
rt = Runtime(agent="it-support", version="1.4.0", tenant="acme", token="s3cret",
             policy=open("fixtures/policies/it-support.cedar").read())
url = rt.start(host="127.0.0.1", port=0)
with rt.session(workflow="password-reset", principal="user-1042") as s:
    s.llm_call(model="gpt-4o-mini", input_tokens=1200, output_tokens=300)
    with s.tool_call("kb_search", {"query": "locked account"}):
        ...
rt.stop()
```

Importing this package loads pydantic and the protocol models only; cedarpy, genai-prices,
the OpenTelemetry SDK and prometheus_client load when first needed. It never imports
textual, typer, sqlite or httpx.
"""

from .config import ModelPrice, RuntimeConfig
from .core import Runtime
from .errors import (
    BudgetExceeded,
    GuardError,
    PolicyDenied,
    PolicyError,
    SessionEnded,
    SessionKilled,
)
from .policy import ToolSpec
from .session import Session
from .tool_call import ToolCall

__all__ = [
    "BudgetExceeded",
    "GuardError",
    "ModelPrice",
    "PolicyDenied",
    "PolicyError",
    "Runtime",
    "RuntimeConfig",
    "Session",
    "SessionEnded",
    "SessionKilled",
    "ToolCall",
    "ToolSpec",
]
