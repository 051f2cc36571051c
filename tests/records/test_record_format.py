"""agentops.record/1: built from what a real endpoint serves, and its JSON Lines form."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from agentops_console.protocol.records import (
    RecordFormatError,
    SessionRecord,
    build_record,
    dumps,
    load_jsonl,
    record_from_wire,
    write_jsonl,
)

from .live import TOKEN, approved, denied, killed, live_runtime, ordinary


def test_live_records_carry_the_audit_fields(live_records: dict[str, SessionRecord]) -> None:
    record = live_records["ordinary"]
    assert record.format == "agentops.record/1"
    assert (record.agent, record.agent_version, record.tenant) == ("it-support", "1.4.0", "acme")
    assert (record.workflow, record.principal, record.session_id) == (
        "password-reset",
        "user-1042",
        "s-ordinary",
    )
    assert record.status == "completed" and record.final_outcome == "unknown"
    assert record.ended_at is not None and record.policy_version == "1.4.0"
    assert record.tokens_in == 1200 and record.cost_usd > 0 and record.counters.tool_calls == 1
    llm, retrieval = record.spans
    assert llm.kind == "llm" and llm.model == "gpt-4o-mini" and llm.token_in == 1200
    assert llm.estimated_cost_usd > 0 and llm.latency_ms == 120.0
    assert retrieval.tool_name == "kb_search" and retrieval.tool_version == "2.3.0"
    assert retrieval.arguments == {"query": "locked account"}
    assert retrieval.tool_output == {"hits": 3}
    assert retrieval.policy_decision == "allow" and retrieval.policy_reason == "known-tools"
    assert retrieval.human_override is None and retrieval.latency_ms is not None
    # this agent reports no input, output or outcome, and exports no trace
    assert record.input is None and record.output is None and record.trace_id is None


def test_denial_keeps_decision_and_reason(live_records: dict[str, SessionRecord]) -> None:
    span = live_records["denied"].spans[-1]
    assert span.tool_name == "crm_update" and span.outcome == "denied"
    assert span.policy_decision == "deny"
    assert span.policy_reason == "customer-facing-change-needs-approved-change"
    assert live_records["denied"].counters.unauthorized_attempts == 1


def test_human_override_names_who_approved(live_records: dict[str, SessionRecord]) -> None:
    [span] = live_records["approved"].spans
    assert span.policy_decision == "approved" and span.outcome == "ok"
    override = span.human_override
    assert override is not None and override.decision == "approved"
    assert override.by == "lead" and override.reason == "ticket 42" and override.at is not None


def test_override_without_the_approval_still_shows_the_decision() -> None:
    with live_runtime() as live:
        from .live import approved

        approved(live, "s-anon")
        record = build_record(live.detail("s-anon"), live.client.agent())  # no approvals given
    override = record.spans[0].human_override
    assert override is not None and override.decision == "approved" and override.by is None


def test_killed_session_outcome_is_failed(live_records: dict[str, SessionRecord]) -> None:
    record = live_records["killed"]
    assert record.status == "killed" and record.final_outcome == "failed"
    assert record.killed is not None and record.killed.operator == "otto.ops"
    assert any(f.kind == "killed" for f in record.flags)


def test_jsonl_round_trip(tmp_path: Path, live_records: dict[str, SessionRecord]) -> None:
    path = tmp_path / "out.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        assert write_jsonl(live_records.values(), fh) == 4
    assert list(load_jsonl(path)) == list(live_records.values())
    assert all(json.loads(line)["format"] == "agentops.record/1" for line in path.open())


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"format": "otel/1", "x": 1}', "not an agentops.record/1 record (format 'otel/1')"),
        ('{"session_id": "x"}', "not an agentops.record/1 record (no format field)"),
        ("[1, 2]", "not an agentops.record/1 record (a JSON object)"),
        ('{"format": "agentops.record/1", "trunc', "not JSON"),
        ('{"format": "agentops.record/1", "agent": "a"}', "agent_version: Field required"),
    ],
)
def test_a_bad_line_names_file_and_line(
    tmp_path: Path, live_records: dict[str, SessionRecord], line: str, expected: str
) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_text(dumps(live_records["ordinary"]) + "\n\n" + line + "\n", encoding="utf-8")
    with pytest.raises(RecordFormatError) as err:
        list(load_jsonl(path))
    message = str(err.value)
    assert message.startswith(f"{path}:3: ") and expected in message
    assert "\n" not in message


def test_naive_timestamps_are_refused(tmp_path: Path) -> None:
    with live_runtime() as live:
        record = live.record(ordinary(live, "s-naive"))
    data = json.loads(dumps(record))
    data["started_at"] = "2025-05-01T09:30:00"
    path = tmp_path / "naive.jsonl"
    path.write_text(json.dumps(data) + "\n", encoding="utf-8")
    with pytest.raises(RecordFormatError, match=r"naive.jsonl:1: started_at: .*timezone"):
        list(load_jsonl(path))


def test_unreadable_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(RecordFormatError, match="cannot read"):
        list(load_jsonl(tmp_path / "missing.jsonl"))
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(RecordFormatError, match="not UTF-8"):
        list(load_jsonl(binary))


def test_the_recorded_sample_is_valid_and_small() -> None:
    sample = Path(__file__).parents[2] / "fixtures" / "records" / "demo-fleet.jsonl"
    assert sample.stat().st_size < 2_000_000
    records = list(load_jsonl(sample))
    versions = {r.agent_version for r in records if r.agent == "it-support"}
    assert len(records) >= 200 and versions == {"1.4.0", "1.5.0"}
    assert len({(r.agent, r.session_id) for r in records}) == len(records)
    assert {"runaway_loop", "budget_exceeded", "policy_denied"} <= {
        f.kind for r in records for f in r.flags
    }


def test_records_built_from_the_batch_read_equal_the_model_path() -> None:
    """What the watcher builds from GET /v1/session-details (decoded JSON, validated once)
    is the record `build_record` makes from the validated SessionDetail: approvals, denial
    reasons, a kill and JSON payloads included."""
    with live_runtime() as live:
        ids = [
            ordinary(live, "s-o"),
            denied(live, "s-d"),
            approved(live, "s-a"),
            killed(live, "s-k"),
        ]
        info = live.client.agent()
        answer = httpx.get(
            f"{live.client.base_url}/v1/session-details",
            params=[("id", i) for i in ids],
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        details = answer.json()["sessions"]
        assert [d["id"] for d in details] == ids
        for detail in details:
            expected = live.record(detail["id"])
            got = record_from_wire(detail, info, live.approvals)
            assert got == expected and dumps(got) == dumps(expected)
        assert record_from_wire(details[2], info, live.approvals).spans[0].human_override


def test_a_wire_detail_of_the_wrong_shape_is_a_value_error() -> None:
    with live_runtime() as live:
        ordinary(live, "s-o")
        detail = json.loads(live.client.session("s-o").model_dump_json())
        info = live.client.agent()
    for broken in (
        {**detail, "spans": {"not": "a list"}},
        {**detail, "spans": [{**detail["spans"][0], "attributes": []}]},
        {**detail, "spans": [{**detail["spans"][0], "attributes": None}]},
        {**detail, "spans": [{**detail["spans"][1], "policy": {"reasons": [1]}}]},
        # not a decision, and not hashable: was a TypeError, which no caller turned into a gap
        {**detail, "spans": [{**detail["spans"][1], "policy": {"decision": []}}]},
        {**detail, "started_at": "2025-06-02T09:00:00"},
    ):
        with pytest.raises(ValueError):
            record_from_wire(broken, info)
