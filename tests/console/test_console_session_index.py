"""SessionIndex: the sessions view's incremental order agrees with a full sort, always."""

from __future__ import annotations

import random
from datetime import timedelta

from agentops_console.console import session_rows
from agentops_console.console.session_index import SessionIndex
from agentops_console.protocol.models import SessionSummary

from .fleetdata import T0, summary

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
        )
    return sessions


def _expected(sessions: Sessions, column: str, reverse: bool, needle: str) -> list[tuple[str, str]]:
    by = session_rows.BY_KEY[column].sort
    kept = [k for k, s in sessions.items() if session_rows.matches(s, needle)]
    kept.sort(key=lambda k: (by(sessions[k]), sessions[k].agent, sessions[k].id, k[0]))
    return kept[::-1] if reverse else kept


def _shown(index: SessionIndex) -> list[tuple[str, str]]:
    return index.keys(0, len(index))


def test_incremental_updates_match_a_full_sort_under_churn() -> None:
    rng = random.Random(4)
    sessions = _fleet(300, rng)
    index = SessionIndex(sort_by="cost")
    index.rebuild(sessions)
    for round_ in range(20):
        changed = set()
        for key in rng.sample(sorted(sessions), 40):  # updates move rows
            old = sessions[key]
            sessions[key] = old.model_copy(
                update={"cost_usd": rng.random(), "last_event_at": T0 + timedelta(hours=1)}
            )
            changed.add(key)
        gone = rng.choice(sorted(sessions))  # evicted
        del sessions[gone]
        new = ("agent-9", f"new-{round_}")  # and new ones arrive
        sessions[new] = summary(new[1], new[0], cost_usd=rng.random())
        assert index.update(sessions, changed | {gone, new})
        assert _shown(index) == _expected(sessions, "cost", False, "")
        assert gone not in index and index.position(new) is not None


def test_unchanged_positions_report_no_move_and_positions_are_exact() -> None:
    sessions = _fleet(50, random.Random(1))
    index = SessionIndex()
    index.rebuild(sessions)
    assert not index.update(sessions, list(sessions))  # same data: nothing moved
    for position, key in enumerate(_shown(index)):
        assert index.position(key) == position and index.key_at(position) == key
    assert index.position(("nope", "nope")) is None


def test_sort_reverse_and_filter_follow_the_sessions_view_rules() -> None:
    sessions = _fleet(120, random.Random(2))
    index = SessionIndex()
    index.rebuild(sessions)
    for column in ("workflow", "tools", "age", "id"):
        for reverse in (False, True):
            index.set_sort(column, reverse, sessions)
            assert _shown(index) == _expected(sessions, column, reverse, "")
    index.set_filter("vpn agent-1", sessions)
    assert _shown(index) == _expected(sessions, "id", True, "vpn agent-1")
    assert len(index) > 0
    key = index.key_at(0)
    sessions[key] = sessions[key].model_copy(update={"workflow": "refunds"})
    assert index.update(sessions, [key])  # no longer matches the filter: it leaves
    assert key not in index
