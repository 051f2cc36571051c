"""GET /v1/session-details: several sessions in one read, bounded in count and bytes, on a
real runtime on loopback over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from agentops_console.protocol.client import AgentClient
from agentops_console.protocol.models import SESSION_DETAILS_MAX, Budgets, SessionDetails
from agentops_console.runtime import Runtime, server
from agentops_console.runtime.config import RuntimeConfig
from tests.loopback import serving, url_of

TOKEN = "details-control-token"
READ = "details-read-token"


@pytest.fixture
def rt() -> Iterator[Runtime]:
    config = RuntimeConfig(budgets=Budgets(max_consecutive_tool_calls=1000), finished_sessions=8)
    runtime = Runtime(
        agent="it-support", version="1.4.0", token=TOKEN, read_token=READ, config=config
    )
    with serving(runtime):
        yield runtime


def finish(rt: Runtime, session_id: str, tools: int = 3) -> str:
    with rt.session("password-reset", "user-1", session_id=session_id) as s:
        for i in range(tools):
            with s.tool_call("kb_search", {"query": f"{session_id}-{i}"}) as call:
                call.output = {"hits": i, "text": "x" * 200}
    return session_id


def get(rt: Runtime, query: str, token: str = READ) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.get(f"{url_of(rt)}/v1/session-details?{query}", headers=headers, timeout=5)


def test_details_in_the_order_asked_equal_the_single_reads_with_the_read_token(
    rt: Runtime,
) -> None:
    ids = [finish(rt, f"s-{i}") for i in range(4)]
    with rt.session("password-reset", "user-2", session_id="s-running"):
        with AgentClient(url_of(rt), READ) as client:
            asked = [ids[2], "s-unknown", ids[0], "s-running", ids[3]]
            batch = client.session_details(asked)
            assert [d.id for d in batch.sessions] == [ids[2], ids[0], "s-running", ids[3]]
            assert batch.missing == ["s-unknown"] and batch.more == []
            for detail in batch.sessions:
                assert detail == client.session(detail.id)
            assert batch.sessions[2].status == "running"


def test_bad_parameters_are_400_json(rt: Runtime) -> None:
    finish(rt, "s-1")
    too_many = "&".join(f"id=s{i}" for i in range(SESSION_DETAILS_MAX + 1))
    for query, words in (
        ("", "give 1 to 500"),
        ("id=", "empty session id"),
        ("id=s-1&id=s-1", "at most once"),
        ("id=s-1&limit=3", "unknown parameter 'limit'"),
        ("id=s-1&&&x", "malformed query"),
        (too_many, "give 1 to 500"),
    ):
        answer = get(rt, query)
        assert answer.status_code == 400, query
        assert answer.json()["status"] == 400 and words in answer.json()["error"], answer.json()
    assert get(rt, "&".join(f"id=s{i}" for i in range(SESSION_DETAILS_MAX))).status_code == 200


def test_needs_a_token(rt: Runtime) -> None:
    finish(rt, "s-1")
    answer = httpx.get(f"{url_of(rt)}/v1/session-details?id=s-1", timeout=5)
    assert answer.status_code == 401 and answer.json()["status"] == 401
    assert get(rt, "id=s-1", token="not-ours-token").status_code == 403
    assert get(rt, "id=s-1", token=TOKEN).status_code == 200


def test_the_byte_bound_leaves_the_rest_for_the_next_read_and_evicted_ones_are_missing(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each answer stops at the byte bound (one session always fits) and lists the rest as
    `more`; a session evicted before the next read comes back as missing, never skipped."""
    ids = [finish(rt, f"s-{i}") for i in range(6)]
    one = len(get(rt, "id=s-0").content)
    monkeypatch.setattr(server, "SESSION_DETAILS_MAX_BYTES", one * 2)
    first = SessionDetails.model_validate_json(get(rt, "&".join(f"id={i}" for i in ids)).content)
    assert [d.id for d in first.sessions] == ids[:2] and first.more == ids[2:]
    assert not first.missing
    for i in range(6, 12):  # the ring holds 8: s-0 to s-3 are evicted
        finish(rt, f"s-{i}")
    second = SessionDetails.model_validate_json(
        get(rt, "&".join(f"id={i}" for i in first.more)).content
    )
    assert second.missing == ["s-2", "s-3"]
    assert [d.id for d in second.sessions] == ["s-4", "s-5"] and second.more == []
    monkeypatch.setattr(server, "SESSION_DETAILS_MAX_BYTES", 10)
    alone = SessionDetails.model_validate_json(get(rt, "id=s-4&id=s-5").content)
    assert [d.id for d in alone.sessions] == ["s-4"] and alone.more == ["s-5"]
