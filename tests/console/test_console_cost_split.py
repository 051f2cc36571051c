"""The console shows what an LLM call was billed for: cached input, cache writes and
reasoning beside the totals, and the session's cost by part (issue 11)."""

from __future__ import annotations

from agentops_console.console.screens.detail import loops_text
from agentops_console.console.widgets.span_timeline import span_row
from agentops_console.protocol.client import AgentClient
from agentops_console.runtime import Runtime

TOKEN = "cost-split-token"


def test_span_and_session_show_the_split_from_a_real_endpoint() -> None:
    rt = Runtime(agent="it-support", version="1.5.1", token=TOKEN)
    url = rt.start(host="127.0.0.1", port=0)
    try:
        with rt.session(workflow="password-reset", principal="u-1") as s:
            s.llm_call(
                model="claude-sonnet-4-5",
                provider="anthropic",
                input_tokens=3000,
                output_tokens=400,
                cache_read_tokens=2000,
                cache_write_tokens=500,
                reasoning_tokens=150,
            )
            session_id = s.id
        with AgentClient(url, TOKEN) as client:
            detail = client.session(session_id)
    finally:
        rt.stop()
    (span,) = [sp for sp in detail.spans if sp.kind == "llm"]
    tokens_cell = span_row(span, detail)[9][0]
    assert tokens_cell == "3000/400 c2000 w500 r150"
    header = loops_text(detail).plain
    assert "cost by part: " in header
    assert "cached $" in header and "cache writes $" in header and "output $" in header
    assert "(tokens 3000/400 c2000 w500 r150)" in header
