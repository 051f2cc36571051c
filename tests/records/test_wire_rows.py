"""The watcher's fast path (records/wire_rows.py) against the validated one: rows cut straight
from an agent's JSON equal, byte for byte, the rows of the record `record_from_wire` builds,
and whatever the validated path refuses, the fast path does not take (so it still becomes a
gap row). The agent is a real Runtime on loopback; the mutations are hypothesis'."""

from __future__ import annotations

import copy
import json
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentops_console.protocol.models import AgentInfo
from agentops_console.protocol.records import (
    COUNTERS,
    SESSION_FROM_WIRE,
    SPAN_FROM_WIRE,
    SessionRecord,
    SpanRecord,
    record_from_wire,
)
from agentops_console.records.store import RECORDED_AT, SessionRows, open_store, rows_of_record
from agentops_console.records.wire_rows import answer_rows, dict_schema, fast_rows

from .live import TOKEN, Live, approved, denied, killed, live_runtime, ordinary


def _answer(live: Live, ids: list[str]) -> list[dict[str, Any]]:
    answer = httpx.get(
        f"{live.client.base_url}/v1/session-details",
        params=[("id", i) for i in ids],
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    sessions: list[dict[str, Any]] = answer.json()["sessions"]
    return sessions


@pytest.fixture(scope="module")
def wire() -> tuple[list[dict[str, Any]], AgentInfo, dict[str, Any]]:
    with live_runtime() as live:
        ids = [
            ordinary(live, "s-o"),
            denied(live, "s-d"),
            approved(live, "s-a"),
            killed(live, "s-k"),
        ]
        details = _answer(live, ids)
        info = live.client.agent()
        held = {a.session_id: [a] for a in live.approvals}
    return details, info, held


def _validated(detail: dict[str, Any], info: AgentInfo, held: dict[str, Any]) -> SessionRows:
    rows = rows_of_record(record_from_wire(detail, info, held.get(str(detail.get("id")), ())))
    assert rows.values[RECORDED_AT] is None  # both leave it to write_batch
    return rows


def test_fast_rows_equal_the_validated_records_rows(
    wire: tuple[list[dict[str, Any]], AgentInfo, dict[str, Any]],
) -> None:
    details, info, held = wire
    fast = fast_rows(details, info, held)
    taken = {d["id"] for d, rows in zip(details, fast, strict=True) if rows is not None}
    # an answered checkpoint's time comes from the Approval model: that one may go the
    # validated way; the others are the fast path's
    assert {"s-o", "s-d", "s-k"} <= taken
    for detail, rows in zip(details, fast, strict=True):
        if rows is not None:
            assert rows == _validated(detail, info, held)


def _body(*details: Any, more: list[str] | None = None) -> bytes:
    """A session-details answer as an agent sends it (the watcher's JSON path reads bytes)."""
    return json.dumps({"sessions": list(details), "missing": [], "more": more or []}).encode()


def test_answer_rows_equal_the_validated_records_rows(
    wire: tuple[list[dict[str, Any]], AgentInfo, dict[str, Any]],
) -> None:
    details, info, held = wire
    asked = {d["id"]: held.get(d["id"], []) for d in details}
    got = answer_rows(_body(*details, more=["later"]), info, asked)
    assert got is not None and got.more == ["later"]
    # a session with known approvals is left to the decoded path (matched to its Approval)
    assert set(got.rows) == {"s-o", "s-d", "s-k"}
    assert [details[i]["id"] for i in got.others] == ["s-a"]
    for detail in details:
        if detail["id"] in got.rows:
            assert got.rows[detail["id"]] == _validated(detail, info, held)
    # without its Approval the answered checkpoint is worked out here (by whom unknown)
    bare = answer_rows(_body(*details), info, {d["id"]: [] for d in details})
    assert bare is not None and not bare.others
    for detail in details:
        assert bare.rows[detail["id"]] == _validated(detail, info, {})
    # approvals known for a session without a checkpoint change nothing: taken here
    approval = held["s-a"]
    plain = answer_rows(_body(details[0]), info, {"s-o": approval})
    assert plain is not None and not plain.others
    assert plain.rows["s-o"] == _validated(details[0], info, {"s-o": approval})
    # not asked for: skipped; not valid as this path checks it: left to the decoded path
    odd = copy.deepcopy(details[0])
    odd["started_at"] = "2025-06-02T09:00:00+00:00"
    some = answer_rows(_body(odd, details[2]), info, {odd["id"]: []})
    assert some is not None and some.rows == {} and some.others == [0]
    assert answer_rows(b'{"sessions": 5}', info, {}) is None
    assert answer_rows(b"not json", info, {}) is None


def test_answer_rows_never_takes_a_computed_field_from_the_agent(
    wire: tuple[list[dict[str, Any]], AgentInfo, dict[str, Any]],
) -> None:
    """The placeholders' key (which a span without policy leaves as read) holding anything
    but null sends the session the decoded way, which ignores the key."""
    details, info, _ = wire
    odd = copy.deepcopy(details[0])
    for span in odd["spans"]:
        span.pop("policy", None)
        span["\x00agentops:computed"] = {"injected": True}
    got = answer_rows(_body(odd), info, {odd["id"]: []})
    assert got is not None and got.rows == {} and got.others == [0]
    assert "injected" not in str(_validated(odd, info, {}).spans)


def test_the_store_holds_the_same_from_rows_and_from_records(
    tmp_path: Path, wire: tuple[list[dict[str, Any]], AgentInfo, dict[str, Any]]
) -> None:
    details, info, held = wire
    fast = [r for r in fast_rows(details, info, held) if r is not None]
    records = [record_from_wire(d, info, held.get(d["id"], ())) for d in details]
    with open_store(tmp_path / "a.db", writer=True, create=True) as store:
        assert store.write_batch(fast).inserted == len(fast)
        assert store.write_batch(records).inserted == len(records) - len(fast)
        back = {r.session_id: r for r in store.query(spans=True)}
    with open_store(tmp_path / "b.db", writer=True, create=True) as store:
        store.write_batch(records)
    for name in ("a", "b"):
        conn = sqlite3.connect(tmp_path / f"{name}.db")
        rows = conn.execute(
            "SELECT s.session_id, s.data, p.idx, p.data FROM sessions s JOIN spans p"
            " ON p.session = s.id ORDER BY s.session_id, p.idx"
        ).fetchall()
        conn.close()
        if name == "a":
            first = rows
    assert first == rows
    assert [back[r.session_id] for r in records] == records


def test_the_generated_shape_is_the_models() -> None:
    """One definition: the fast path's validator has exactly the record's fields."""
    for model in (SessionRecord, SpanRecord):
        root = dict_schema(model)
        fields = root["schema"]["fields"] if root["type"] == "definitions" else root["fields"]
        assert list(fields) == list(model.model_fields)
    assert set(SPAN_FROM_WIRE) <= set(SpanRecord.model_fields)
    assert set(SESSION_FROM_WIRE) <= set(SessionRecord.model_fields)


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.sampled_from(
        [
            "",
            "x",
            "tool",
            "ok",
            "completed",
            "2025-06-02T09:00:00Z",
            "2025-06-02T09:00:00.000001Z",
            "2025-06-02T09:00:00.100000Z",
            "2025-06-02T09:00:00.000000Z",
            "2025-06-02T09:00:00+02:00",
            "2025-06-02T09:00:00",
            "2024-02-29T09:00:00Z",
            "2025-02-29T09:00:00Z",
            "2025-06-31T09:00:00Z",
            "0000-01-01T00:00:00Z",
            "5",
            "1.5",
        ]
    )
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=5,
)
_SESSION_KEYS = [*SESSION_FROM_WIRE.values(), "tenant", "trace_id", "outcome", *COUNTERS, "spans"]
_SPAN_KEYS = [*SPAN_FROM_WIRE.values(), "policy", "session_id"]
_NESTED = [
    ("budget", "max_cost_usd_session"),
    ("budget", "max_tool_calls"),
    ("policy", "decision"),
    ("policy", "reasons"),
    ("policy", "policy_version"),
    ("policy", "errors"),
    ("policy", "approval_id"),
    ("attributes", "agentops.parent_trace_id"),
    ("attributes", "otel.trace_id"),
]


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    where=st.sampled_from(["session", "span", "nested-session", "nested-span", "flag", "drop"]),
    pick=st.integers(min_value=0, max_value=1000),
    session=st.integers(min_value=0, max_value=3),
    span_at=st.integers(min_value=0, max_value=30),
    value=_JSON,
)
def test_what_the_fast_path_takes_the_validated_path_takes_the_same(
    wire: tuple[list[dict[str, Any]], AgentInfo, dict[str, Any]],
    where: str,
    pick: int,
    session: int,
    span_at: int,
    value: Any,
) -> None:
    """Any one value of any type anywhere: the fast path either leaves the session to the
    validated path (None) or gives exactly its rows; and never takes what it refuses."""
    details, info, held = wire
    detail = copy.deepcopy(details[session % len(details)])
    span = detail["spans"][span_at % len(detail["spans"])]
    if where == "session":
        detail[_SESSION_KEYS[pick % len(_SESSION_KEYS)]] = value
    elif where == "span":
        span[_SPAN_KEYS[pick % len(_SPAN_KEYS)]] = value
    elif where == "drop":
        keys = list(span) if pick % 2 else list(detail)
        (span if pick % 2 else detail).pop(keys[pick % len(keys)])
    elif where == "flag":
        detail["flags"] = [
            {"kind": "runaway_loop", "at": "2025-06-02T09:00:00Z", "message": "m", "span_id": value}
        ]
    else:
        outer, inner = _NESTED[pick % len(_NESTED)]
        target = detail if where == "nested-session" else span
        if isinstance(target.get(outer), dict):
            target[outer][inner] = value
        else:
            target[outer] = {inner: value}
    detail = json.loads(json.dumps(detail))  # what a decoder gives: plain JSON values
    try:
        expected: SessionRows | None = _validated(detail, info, held)
    except ValueError:
        expected = None
    got = fast_rows([detail], info, held)[0]
    if got is not None:
        assert expected is not None, "the fast path took what the validated path refuses"
        assert got == expected
    # the JSON path (straight from the answer's bytes), with the approvals known and without
    session_id = str(detail.get("id"))
    for known in (held, {}):
        try:
            want: SessionRows | None = _validated(detail, info, known)
        except ValueError:
            want = None
        answer = answer_rows(_body(detail), info, {session_id: known.get(session_id, [])})
        if answer is not None and answer.rows:
            assert want is not None, "the JSON path took what the validated path refuses"
            assert answer.rows == {session_id: want}


_ODD = [None, 5, 1.5, True, "", "x", "allow", "approved", "denied", [], ["x"], [5], {}, {"a": 1}]


def test_the_json_path_works_out_what_computed_fields_does(
    wire: tuple[list[dict[str, Any]], AgentInfo, dict[str, Any]],
) -> None:
    """Every wire value the computed fields are made of, in every span, set to odd values
    one at a time: the JSON path gives the validated path's rows or leaves the session to
    it (the hypothesis test above samples the same space; this walks it)."""
    details, info, held = wire
    places: list[tuple[str | None, str]] = [
        *((None, key) for key in ("tenant", "trace_id", "outcome", "status", *COUNTERS)),
        *(
            ("policy", key)
            for key in ("decision", "reasons", "errors", "policy_version", "approval_id")
        ),
        ("attributes", "agentops.parent_trace_id"),
        ("attributes", "otel.trace_id"),
        ("span", "policy"),
        ("span", "attributes"),
        ("span", "outcome"),
        ("span", "error"),
    ]
    taken = 0
    for base in details:
        for at in range(len(base["spans"])):
            for outer, key in places:
                for value in _ODD:
                    detail = copy.deepcopy(base)
                    span = detail["spans"][at]
                    if outer is None:
                        detail[key] = value
                    elif outer == "span":
                        span[key] = value
                    elif isinstance(span.get(outer), dict):
                        span[outer][key] = value
                    else:
                        span[outer] = {key: value}
                    for known in ({}, held):
                        try:
                            want: SessionRows | None = _validated(detail, info, known)
                        except ValueError:
                            want = None
                        asked = {detail["id"]: known.get(detail["id"], [])}
                        got = answer_rows(_body(detail), info, asked)
                        if got is not None and got.rows:
                            taken += 1
                            assert want is not None, (outer, key, value)
                            assert got.rows == {detail["id"]: want}, (outer, key, value)
    assert taken > 100
