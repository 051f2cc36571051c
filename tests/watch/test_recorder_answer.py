"""The recorder builds a GET /v1/session-details answer straight from its bytes
(`_answer_records`): the same records by session id as decoding it and building each session
the validated way, whatever mix the answer holds (sessions that path takes, one with a time it
leaves to record_from_wire, one with known approvals, one that is not a record, one not asked
for), and the ids left for later. The sessions come from a real runtime on loopback."""

from __future__ import annotations

import copy
import json
from typing import Any

import httpx
import pytest
from pydantic_core import from_json

from agentops_console.protocol.client import EndpointError
from agentops_console.records.store import SessionRows
from agentops_console.watch.recorder import _answer_records, _records
from tests.records.live import TOKEN, approved, denied, killed, live_runtime, ordinary


def test_an_answer_from_its_bytes_gives_what_decoding_it_gives() -> None:
    with live_runtime() as live:
        ids = [ordinary(live, "s-o"), denied(live, "s-d"), approved(live, "s-a")]
        ids.append(killed(live, "s-k"))
        answer = httpx.get(
            f"{live.client.base_url}/v1/session-details",
            params=[("id", i) for i in ids],
            headers={"Authorization": f"Bearer {TOKEN}"},
        ).json()
        info = live.client.agent()
        held = {a.session_id: [a] for a in live.approvals}
    details: list[dict[str, Any]] = answer["sessions"]
    offset = copy.deepcopy(details[0])  # a time this path leaves to record_from_wire
    offset.update(id="s-offset", started_at=offset["started_at"].replace("Z", "+00:00"))
    broken = copy.deepcopy(details[1])  # not a record at all: a gap row
    broken.update(id="s-broken", status="exploded")
    stranger = copy.deepcopy(details[0])  # not asked for: skipped
    stranger["id"] = "s-stranger"
    sessions = [*details, offset, broken, stranger]
    body = json.dumps({"sessions": sessions, "missing": [], "more": ["s-later"]}).encode()
    asked: dict[str, list[Any]] = {s["id"]: held.get(s["id"], []) for s in sessions}
    del asked["s-stranger"]

    built, more = _answer_records(body, info, asked)

    assert more == ["s-later"]
    assert built == _records(from_json(body)["sessions"], info, asked)
    assert set(built) == {"s-o", "s-d", "s-a", "s-k", "s-offset", "s-broken"}
    assert built["s-broken"] is None
    assert all(isinstance(built[i], SessionRows) for i in ("s-o", "s-d", "s-k"))
    assert built["s-offset"] is not None


@pytest.mark.parametrize("body", [b"[]", b'{"sessions": [5]}', b"<html>", b'{"more": 1}'])
def test_a_body_that_is_not_an_answer_is_an_endpoint_error(body: bytes) -> None:
    """As when the client decoded it: the batch read is retried, nothing is recorded."""
    with live_runtime() as live:
        info = live.client.agent()
    with pytest.raises(EndpointError, match="unexpected answer"):
        _answer_records(body, info, {})
