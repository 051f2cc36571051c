"""The console validates each event without its span (console/decode.py): everything it
shows is decoded exactly as `Event` decodes it, and a real agent's spans are never built."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from textual.message import Message

from agentops_console.console.connection import AgentConnection, AgentSource, Backoff
from agentops_console.console.decode import decode_event
from agentops_console.console.store import FleetStore
from agentops_console.protocol.models import Budgets, BudgetState, Event, WorkflowState

from .agents import TOKEN, TOKEN_ENV, running, until
from .fleetdata import EVIL, agent_info, approval, event, flag, spans, summary


def _wire() -> list[bytes]:
    """One event of every shape the store reads, as an agent sends it."""
    session = summary("s-0001", flags=[flag()], workflow=EVIL)
    events = [
        event(1, "session_started", session_id="s-0001", session=session),
        event(2, "span_ended", session_id="s-0001", session=session, span=spans("s-0001")[0]),
        event(3, "flag", session_id="s-0001", workflow="password-reset", flag=flag()),
        event(4, "approval_requested", approval=approval()),
        event(
            5,
            "workflow_disabled",
            workflow="vpn-help",
            operator="ops",
            reason=EVIL,
            workflow_state=WorkflowState(workflow="vpn-help", disabled=True, reason=EVIL),
        ),
        event(6, "budgets_changed", budgets=BudgetState(scope="agent", budgets=Budgets())),
        event(7, "policy_changed", policy=agent_info().policy),
        event(8, "sessions_evicted", data={"session_ids": ["s-0001", "s-0002"]}),
        event(9, "gap", gap_from=3, gap_to=8, reason="ring overrun"),
        event(10, "session_killed", session_id="s-0001", session=session, operator="ops"),
    ]
    return [e.model_dump_json().encode() for e in events]


def test_an_event_is_decoded_as_event_decodes_it_less_its_span() -> None:
    for data in _wire():
        full = Event.model_validate_json(data)
        light = decode_event(data)
        assert isinstance(light, Event)
        assert light.span is None
        assert light.model_dump() == {**full.model_dump(), "span": None}, full.type


@pytest.mark.parametrize(
    "data",
    [b"", b"not json", b"[]", b'{"seq": 1}', b'{"seq": 1, "type": "nope", "at": "x"}'],
)
def test_junk_is_none_as_with_the_full_decoder(data: bytes) -> None:
    assert decode_event(data) is None


class _Recorded(FleetStore):
    """The real store, keeping each event it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Event] = []

    def apply_event(self, source: str, event: Event) -> None:
        self.seen.append(event)
        super().apply_event(source, event)


async def test_a_real_agents_events_reach_the_store_without_their_spans(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The span was ~40 % of validating each event and no view reads it: the console's
    feed decodes through console/decode.py (AgentFeed's and the client's `decode` hook)."""
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    with running() as rt:
        assert rt.url is not None
        store, posted = _Recorded(), list[Message]()
        fast = Backoff(initial_s=0.05, factor=2.0, max_s=0.2, jitter=0.0)
        conn = AgentConnection(
            AgentSource("it", rt.url, TOKEN_ENV), store, posted.append, backoff=fast
        )
        task = asyncio.create_task(conn.run())
        try:
            await until(lambda: conn.snapshots == 1, what="the snapshot")
            with rt.session(workflow="vpn-help", principal="user-2", session_id="s") as s:
                s.llm_call(model="gpt-4o-mini", input_tokens=100, output_tokens=10)
                with s.tool_call("kb_search", {"query": "vpn"}):
                    pass
            await until(lambda: store.sessions.get(("it", "s")) is not None)
            await until(lambda: store.sessions[("it", "s")].status == "completed")
            kinds = {e.type for e in store.seen}
            assert "span_ended" in kinds, kinds  # the agent did send spans
            assert all(e.span is None for e in store.seen)
            assert store.sessions[("it", "s")].tool_calls == 1
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await conn.aclose()
