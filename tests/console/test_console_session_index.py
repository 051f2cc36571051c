"""SessionOrders and SessionIndex: the sessions view's incremental orders and filter agree
with a full sort and a full filter pass, always (every column, both directions, churn)."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from agentops_console.console import session_index, session_rows
from agentops_console.console.session_index import SessionIndex, SessionOrders
from agentops_console.protocol.models import SessionSummary

from .fleetdata import T0, flag, summary

Sessions = dict[tuple[str, str], SessionSummary]


def _fleet(n: int, rng: random.Random) -> Sessions:
    sessions: Sessions = {}
    for i in range(n):
        source = f"agent-{i % 3}"
        sessions[(source, f"s-{i:04d}")] = summary(
            f"s-{i:04d}",
            source,
            workflow=rng.choice(["pw-reset", "vpn-help", "refunds"]),
            minute=rng.randrange(30),
            tool_calls=rng.randrange(10),
            cost_usd=rng.random(),
            flags=[flag()] if rng.random() < 0.1 else [],
        )
    return sessions


def _expected(sessions: Sessions, column: str, reverse: bool, needle: str) -> list[tuple[str, str]]:
    by = session_rows.BY_KEY[column].sort
    kept = [k for k, s in sessions.items() if session_rows.matches(s, needle)]
    kept.sort(key=lambda k: (by(sessions[k]), sessions[k].agent, sessions[k].id, k))
    return kept[::-1] if reverse else kept


def _shown(index: SessionIndex) -> list[tuple[str, str]]:
    return index.keys(0, len(index))


def _churn(sessions: Sessions, rng: random.Random, round_: int) -> set[tuple[str, str]]:
    """Updates that move rows in several columns, an eviction and a new session."""
    changed = set()
    for key in rng.sample(sorted(sessions), 40):
        old = sessions[key]
        sessions[key] = old.model_copy(
            update={
                "cost_usd": rng.random(),
                "tool_calls": rng.randrange(10),
                "status": rng.choice(["running", "completed", "killed"]),
                "last_event_at": T0 + timedelta(hours=1),
            }
        )
        changed.add(key)
    gone = rng.choice(sorted(sessions))
    del sessions[gone]
    new = ("agent-9", f"new-{round_}")
    sessions[new] = summary(new[1], new[0], cost_usd=rng.random(), workflow="vpn-help")
    return changed | {gone, new}


@pytest.mark.parametrize("merge_above", [1500, 5])  # bisect per move, and the merge path
def test_every_column_order_matches_a_full_sort_under_churn(
    merge_above: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(session_index, "_MERGE_ABOVE", merge_above)
    rng = random.Random(4)
    sessions = _fleet(300, rng)
    orders = SessionOrders()
    orders.update(sessions, list(sessions))
    index = SessionIndex(orders)
    for round_ in range(15):
        orders.update(sessions, _churn(sessions, rng, round_))
        for column in session_rows.COLUMN_KEYS:
            for reverse in (False, True):
                index.set_sort(column, reverse)
                assert _shown(index) == _expected(sessions, column, reverse, "")


def test_positions_are_exact_and_unchanged_data_moves_nothing() -> None:
    sessions = _fleet(50, random.Random(1))
    orders = SessionOrders()
    orders.update(sessions, list(sessions))
    before = {c: list(orders.order(c)) for c in session_rows.COLUMN_KEYS}
    orders.update(sessions, list(sessions))  # same data
    assert {c: orders.order(c) for c in session_rows.COLUMN_KEYS} == before
    index = SessionIndex(orders, sort_by="cost", reverse=True)
    for position, key in enumerate(_shown(index)):
        assert index.position(key) == position and index.key_at(position) == key
    assert index.position(("nope", "nope")) is None
    with pytest.raises(IndexError):
        index.key_at(len(index))


def test_filter_narrows_widens_and_follows_updates_like_a_full_pass() -> None:
    rng = random.Random(2)
    sessions = _fleet(200, rng)
    orders = SessionOrders()
    orders.update(sessions, list(sessions))
    index = SessionIndex(orders, sort_by="tools")
    # typed on letter by letter, a word more, a letter deleted, another word, cleared
    needles = ("v", "vp", "vpn", "vpn agent-1", "vpn agent-1 s-00", "vpn agent-1 s-0", "refunds")
    for needle in (*needles, ""):
        index.set_filter(needle)
        assert _shown(index) == _expected(sessions, "tools", False, needle)
    index.set_filter("vpn")
    for round_ in range(10):
        changed = _churn(sessions, rng, round_)
        orders.update(sessions, changed)
        index.update(changed)
        assert _shown(index) == _expected(sessions, "tools", False, "vpn")
        index.set_sort("cost", round_ % 2 == 1)  # the same sessions, re-ordered
        assert _shown(index) == _expected(sessions, "cost", round_ % 2 == 1, "vpn")
        index.set_sort("tools", False)
    key = index.key_at(0)
    sessions[key] = sessions[key].model_copy(update={"workflow": "refunds"})
    orders.update(sessions, [key])
    index.update([key])  # no longer matches the filter: it leaves
    assert key not in index and index.position(key) is None


def test_ties_break_on_agent_then_id_as_the_nested_tuples_did() -> None:
    """The tie is one string now (agent, separator, id): an agent whose name is a prefix
    of another's, ids that are prefixes of each other, and two sources reporting the same
    agent and id still order exactly as (value, agent, id, key) does, in every column."""
    sessions: Sessions = {}
    for source, agent, session_id in [
        ("src-a", "ab", "a"),
        ("src-b", "a", "z"),
        ("src-c", "a", "za"),
        ("src-d", "a b", "a"),
        ("src-e", "a", "z"),  # same agent and id as src-b: the key decides
        ("src-f", "a-", "0"),
    ]:
        sessions[(source, session_id)] = summary(session_id, agent, minute=5, cost_usd=0.5)
    orders = SessionOrders()
    orders.update(sessions, list(sessions))
    index = SessionIndex(orders)
    for column in session_rows.COLUMN_KEYS:
        for reverse in (False, True):
            index.set_sort(column, reverse)
            assert _shown(index) == _expected(sessions, column, reverse, "")
