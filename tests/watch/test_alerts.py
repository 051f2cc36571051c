"""AlertDetector: which denials need the denied call's arguments, and what they decide (the
watcher fetches them from the session's detail: tests/watch/test_service_filter.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from agentops_console.protocol.models import Event, Flag, SessionSummary
from agentops_console.watch.alerts import AlertDetector, IncidentPolicy

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _denial(message: str = "export_data denied by policy: no-foreign-export") -> Event:
    session = SessionSummary(
        id="s1",
        agent="a",
        workflow="wf",
        principal="p",
        tenant="acme",
        status="running",
        started_at=NOW,
        last_event_at=NOW,
    )
    flag = Flag(kind="policy_denied", severity="critical", at=NOW, message=message, span_id="x")
    return Event(seq=7, type="flag", at=NOW, session_id="s1", session=session, flag=flag)


def test_a_denial_that_may_be_cross_tenant_asks_for_its_arguments() -> None:
    detector = AlertDetector()
    assert detector.arguments_needed(_denial()) == ("s1", "x")
    # the message alone says so: no need to read anything
    assert detector.arguments_needed(_denial("denied by no-cross-tenant-export")) is None
    only_bursts = AlertDetector(IncidentPolicy(causes=["policy_denied"]))
    assert only_bursts.arguments_needed(_denial()) is None
    other = _denial().model_copy(update={"type": "session_updated"})
    assert detector.arguments_needed(other) is None


def test_the_arguments_decide_a_cross_tenant_export() -> None:
    (alert,) = AlertDetector().observe("a", _denial(), {"tenant": "globex"})
    assert alert.cause == "cross_tenant_export" and alert.scope == "workflow:wf"
    assert alert.summary == (
        "cross-tenant export attempt: export_data denied by policy: no-foreign-export"
    )
    assert AlertDetector().observe("a", _denial(), {"tenant": "acme"}) == []
    assert AlertDetector().observe("a", _denial(), None) == []
