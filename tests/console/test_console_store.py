"""FleetStore: snapshots, events, replays, eviction, stale marking, alerts and spend."""

from __future__ import annotations

from datetime import timedelta

import pytest

from agentops_console.console import session_rows
from agentops_console.console.store import FleetStore
from agentops_console.protocol.models import Budgets, BudgetState, WorkflowState

from .fleetdata import (
    NOW,
    T0,
    agent_info,
    approval,
    disabled,
    event,
    fixed_clock,
    flag,
    summary,
)


def _store() -> FleetStore:
    store = FleetStore(clock=fixed_clock)
    store.add_agent("a", "http://127.0.0.1:1")
    return store


def test_snapshot_replaces_sessions_and_approvals_and_marks_live() -> None:
    store = _store()
    changes = store.watch()
    store.apply_snapshot(
        "a", agent_info(seq=7), [summary("s1"), summary("s2")], [approval("ap-1", "s1")]
    )
    assert set(store.sessions) == {("a", "s1"), ("a", "s2")}
    assert store.agents["a"].state == "live" and store.agents["a"].last_seq == 7
    assert list(store.approvals) == [("a", "ap-1")]
    taken = changes.take()
    assert {("a", "s1"), ("a", "s2")} <= taken.sessions and taken.approvals
    assert not changes.any()
    store.apply_snapshot("a", agent_info(seq=9), [summary("s2")], [])
    assert set(store.sessions) == {("a", "s2")}
    assert store.approvals == {}
    assert ("a", "s1") in changes.take().sessions  # removal is a change too


def test_events_upsert_by_key_and_old_views_do_not_win() -> None:
    store = _store()
    store.apply_snapshot("a", agent_info(), [], [])
    newer = summary("s1", tool_calls=9, last_event_at=T0 + timedelta(minutes=3))
    older = summary("s1", tool_calls=1, last_event_at=T0 + timedelta(minutes=1))
    store.apply_event("a", event(1, "session_updated", session=newer))
    store.apply_event("a", event(2, "session_updated", session=older))
    assert store.sessions[("a", "s1")].tool_calls == 9
    assert store.agents["a"].last_seq == 2
    store.apply_event("a", event(3, "sessions_evicted", data={"session_ids": ["s1"]}))
    assert store.sessions == {}


def test_flags_become_alerts_newest_first_once_each_with_latency() -> None:
    store = _store()
    store.apply_snapshot("a", agent_info(), [], [])
    first, second = flag("runaway_loop", 10), flag("policy_denied", 20)
    s1 = summary("s1", flags=[first])
    store.apply_event("a", event(1, "flag", session=s1, flag=first))
    store.apply_event("a", event(2, "flag", session=s1, flag=first))  # replayed
    s1b = summary("s1", flags=[first, second], last_event_at=T0 + timedelta(minutes=2))
    store.apply_event("a", event(3, "flag", session=s1b, flag=second))
    assert [a.flag.kind for a in store.alerts] == ["policy_denied", "runaway_loop"]
    alert = store.alerts[0]
    assert alert.latency_ms == (NOW - second.at).total_seconds() * 1000
    drawn = second.at + timedelta(milliseconds=40)
    store.mark_alerts_displayed(drawn)  # the first redraw after arrival, in any view
    assert alert.latency_ms == 40
    store.mark_alerts_displayed(drawn + timedelta(seconds=9))  # a later view switch
    assert alert.latency_ms == 40 and store.alerts[1].displayed_at == drawn


def test_stale_then_live_touches_every_session_of_that_agent_only() -> None:
    store = _store()
    store.add_agent("b", "http://127.0.0.1:2")
    store.apply_snapshot("a", agent_info(), [summary("s1")], [])
    store.apply_snapshot("b", agent_info("other"), [summary("t1", "other")], [])
    changes = store.watch()
    changes.take()
    store.mark_stale("a", "connection refused", 3)
    agent = store.agents["a"]
    assert (agent.state, agent.retries, agent.error) == ("stale", 3, "connection refused")
    assert agent.last_seen == NOW
    taken = changes.take()
    assert taken.sessions == {("a", "s1")} and taken.agents == {"a"}
    store.mark_live("a")
    assert not store.is_stale("a") and store.agents["a"].retries == 0
    assert changes.take().sessions == {("a", "s1")}


def test_workflow_budget_policy_and_approval_events_update_the_agent() -> None:
    store = _store()
    store.apply_snapshot("a", agent_info(), [], [])
    store.apply_event(
        "a", event(1, "workflow_disabled", workflow="vpn-help", workflow_state=disabled("vpn-help"))
    )
    assert store.workflow_disabled("a", "vpn-help")
    enabled = WorkflowState(workflow="vpn-help", disabled=False)
    store.apply_event("a", event(2, "workflow_enabled", workflow_state=enabled))
    assert store.agents["a"].disabled_workflows == []
    state = BudgetState(scope="agent", budgets=Budgets(max_cost_usd_session=5.0))
    store.apply_event("a", event(3, "budgets_changed", budgets=state))
    assert store.agents["a"].info is not None
    assert store.agents["a"].info.budgets.max_cost_usd_session == 5.0
    store.apply_event("a", event(4, "approval_requested", approval=approval()))
    assert ("a", "ap-1") in store.approvals
    store.apply_event("a", event(5, "approval_resolved", approval=approval(status="approved")))
    assert store.approvals == {}


def test_fleet_rows_count_active_sessions_open_alerts_and_spend_per_minute() -> None:
    store = _store()
    store.apply_snapshot("a", agent_info(), [summary("s1", cost_usd=0.5)], [])
    grown = summary("s1", cost_usd=0.75, flags=[flag()], last_event_at=T0 + timedelta(minutes=4))
    store.apply_event("a", event(1, "session_updated", session=grown))
    done = summary("s2", status="completed", flags=[flag("policy_denied")])
    store.apply_event("a", event(2, "session_ended", session=done))
    (row,) = store.fleet()
    assert (row.active, row.open_alerts) == (1, 1)
    # the snapshot's spend is history; what the stream adds is this minute's
    assert row.spend_per_min == pytest.approx(0.25 + 0.0123)


def test_filter_and_sort_keys() -> None:
    s = summary("s1", workflow="vpn-help", principal="bob", status="killed")
    assert session_rows.matches(s, "VPN killed")
    assert not session_rows.matches(s, "vpn running")
    rows = [summary("b", cost_usd=0.2), summary("a", cost_usd=0.2), summary("c", cost_usd=0.1)]
    ordered = sorted(rows, key=session_rows.sort_key("cost"))
    assert [r.id for r in ordered] == ["c", "a", "b"]
    cells = session_rows.cells(s, NOW)
    assert cells[session_rows.COLUMN_KEYS.index("age")] == "5m00s"
    assert cells[session_rows.COLUMN_KEYS.index("cost")] == "$0.0123/$2.00 1%"


HOSTILE = "x\x1b]52;c;SE9TVElMRQ==\x07\u202e"


def _unsafe(text: str) -> bool:
    return any(ch in text for ch in "\x1b\x07\u202e")


def test_agent_text_is_cleaned_where_it_enters_and_raw_ids_are_kept_for_actions() -> None:
    store = _store()
    sid, wf = "s" + HOSTILE, "wf" + HOSTILE
    hostile = summary(sid, "a" + HOSTILE, workflow=wf, principal=HOSTILE, flags=[flag()])
    store.apply_snapshot(
        "a",
        agent_info("a" + HOSTILE, workflows=[wf], disabled_workflows=[disabled(wf)]),
        [hostile],
        [approval("ap" + HOSTILE, sid, workflow=wf, tool=HOSTILE, arguments={HOSTILE: HOSTILE})],
    )
    key = ("a", sid)  # keyed by the raw id: events and actions name the session so
    shown = store.sessions[key]
    for text in (shown.id, shown.agent, shown.workflow, shown.principal, store.agent_name("a")):
        assert not _unsafe(text) and "\\x1b" in text
    assert list(store.sessions_of("a")) == [shown]
    assert store.workflow_ref(key) == wf
    info = store.agents["a"].info
    assert info is not None and not _unsafe(repr(info.model_dump()))
    (entry,) = store.approvals.values()
    assert (entry.approval_ref, entry.session_ref) == ("ap" + HOSTILE, sid)
    assert not _unsafe(entry.approval.model_dump_json()) and not _unsafe(repr(entry.approval))
    (alert,) = store.alerts
    assert (alert.session_ref, alert.workflow_ref) == (sid, wf)
    assert alert.session_id is not None and not _unsafe(alert.session_id)
    store.apply_event(
        "a", event(1, "flag", session_id=sid, workflow=wf, flag=flag(message=HOSTILE, second=50))
    )
    assert not _unsafe(store.alerts[0].flag.message) and store.alerts[0].session_ref == sid
    store.apply_event("a", event(2, "sessions_evicted", data={"session_ids": [sid]}))
    assert key not in store.sessions and store.workflow_ref(key) is None


def test_endpoint_errors_are_stored_clean() -> None:
    store = _store()
    shown = store.mark_stale("a", "500 " + HOSTILE + "\nsecond line", 1)
    assert shown == store.agents["a"].error and not _unsafe(shown) and "\n" not in shown


def test_the_fleets_active_count_follows_every_way_a_session_comes_changes_and_goes() -> None:
    """The count is kept per agent as sessions change (counting over all 20,000 sessions
    took ~8 ms per fleet redraw); it must always equal a recount."""
    store = _store()
    store.add_agent("b", "http://127.0.0.1:2")

    def recount() -> dict[str, int]:
        counts = dict.fromkeys(store.agents, 0)
        for (source, _), s in store.sessions.items():
            counts[source] += s.status in ("running", "waiting_approval")
        return counts

    def shown() -> dict[str, int]:
        return {row.agent.source: row.active for row in store.fleet()}

    later = T0 + timedelta(minutes=9)
    store.apply_snapshot("a", agent_info(), [summary("s1"), summary("s2"), summary("s3")], [])
    store.apply_snapshot("b", agent_info("b"), [summary("s1", agent="b")], [])
    steps = [
        ("a", event(1, "session_updated", session=summary("s1", status="waiting_approval"))),
        ("a", event(2, "session_ended", session=summary("s2", status="completed"))),
        ("a", event(3, "session_started", session=summary("s4"))),
        # a late, older view of an ended session changes nothing
        ("a", event(4, "session_updated", session=summary("s2", last_event_at=T0))),
        ("a", event(5, "session_killed", session=summary("s3", status="killed"))),
        ("a", event(6, "sessions_evicted", data={"session_ids": ["s1", "s2", "nope"]})),
        ("b", event(1, "session_updated", session=summary("s1", agent="b", last_event_at=later))),
    ]
    for source, ev in steps:
        store.apply_event(source, ev)
        assert shown() == recount(), ev.type
    # a snapshot drops what the agent no longer holds and replaces the rest
    store.apply_snapshot("a", agent_info(), [summary("s3", status="killed"), summary("s9")], [])
    assert shown() == recount() == {"a": 1, "b": 1}
    store.apply_snapshot("b", agent_info("b"), [], [])
    assert shown() == recount() == {"a": 1, "b": 0}
