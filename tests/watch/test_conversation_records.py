"""Issue 9, "nothing is lost": the real `agentops watch` process records every run of an
OTel conversation into its one record, the refused runs of a killed one too, and a run the
agent held as a new session after evicting the conversation (a real runtime on loopback
with the real SDK TracerProvider and the runtime's span processor)."""

from __future__ import annotations

from pathlib import Path

from opentelemetry.trace import Tracer

from agentops_console.protocol.models import Budgets
from agentops_console.records.store import open_store
from agentops_console.runtime import Runtime
from agentops_console.runtime.config import RuntimeConfig
from tests.conversation_turns import traced
from tests.conversation_turns import turn as conversation_turn

from .test_watcher_process import TOKEN, recorded, url_of, wait_for, wait_live, watch_setup


def turn(tracer: Tracer, conversation: str, tool: str, kill: Runtime | None = None) -> bool:
    """One run of the conversation; `kill` kills it just before the tool (the watcher reads a
    killed session at once, and skips ends while it waits). True when the tool ran."""
    stop = None if kill is None else (lambda: kill.kill(conversation, "ops", "stop"))
    return conversation_turn(tracer, conversation, tool, agent="it-support", before_tool=stop)


def stored(records: Path, session_id: str) -> tuple[str, int] | None:
    """(status, span count) of the stored record of a session."""
    rows = [(r[2], r[3]) for r in recorded(records) if r[1] == session_id]
    return rows[0] if rows else None


def test_every_run_of_a_conversation_lands_in_its_one_record(tmp_path: Path) -> None:
    # the finished ring holds one session: chat-1 is evicted once chat-2 ends
    config = RuntimeConfig(budgets=Budgets(max_consecutive_tool_calls=1000), finished_sessions=1)
    rt = Runtime("it-support", "1.4.0", tenant="acme", token=TOKEN, config=config)
    rt.start(host="127.0.0.1", port=0)
    with traced(rt) as tracer:
        with watch_setup(tmp_path) as setup:
            watcher = setup.start(url_of(rt))
            wait_live(watcher)
            assert turn(tracer, "chat-1", "kb_search")
            wait_for(lambda: stored(setup.records, "chat-1") == ("completed", 2), what="run 1")
            assert turn(tracer, "chat-1", "reset_password")  # the chat's next message
            wait_for(lambda: stored(setup.records, "chat-1") == ("completed", 4), what="run 2")

            assert not turn(tracer, "chat-2", "kb_search", kill=rt)
            wait_for(lambda: stored(setup.records, "chat-2") == ("killed", 2), what="killed")
            assert not turn(tracer, "chat-2", "export_data")  # refused: still killed
            wait_for(lambda: stored(setup.records, "chat-2") == ("killed", 4), what="refused")
            assert rt.get("chat-1") is None  # evicted: its next run is a new session object
            assert turn(tracer, "chat-1", "crm_update")
            wait_for(lambda: stored(setup.records, "chat-1") == ("completed", 6), what="run 3")
            assert watcher.stop() == 0, watcher.log()
            with open_store(setup.records) as store:
                first = store.get("chat-1")
                killed = store.get("chat-2")
    assert [(s.kind, s.tool_name) for s in first.spans] == [
        ("llm", None),
        ("tool", "kb_search"),
        ("llm", None),
        ("tool", "reset_password"),
        ("llm", None),
        ("tool", "crm_update"),  # merged into the record, not replacing runs 1 and 2
    ]
    assert (first.tokens_in, first.tokens_out) == (300, 30)
    tools = [(s.tool_name, s.outcome) for s in killed.spans if s.kind == "tool"]
    assert tools == [("kb_search", "killed"), ("export_data", "killed")]
