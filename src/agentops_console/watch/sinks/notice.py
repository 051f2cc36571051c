"""One page about one incident: the only input every sink renders from."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

#: The governance DB's incident severities, most urgent first.
IncidentSeverity = Literal["critical", "high", "medium", "low"]
SEVERITY_RANK: dict[str, int] = {"low": 0, "medium": 1, "high": 2, "critical": 3}

#: Version of the generic webhook body (docs/watch.md).
NOTICE_SCHEMA = "agentops.notice/1"


def dedup_key_for(incident_id: str) -> str:
    """One key per incident, so trigger and resolve meet in the paging service."""
    return f"agentops-incident-{incident_id}"


class Notice(BaseModel):
    """An incident opened (`trigger`) or closed (`resolve`) by the watcher."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    state: Literal["trigger", "resolve"]
    incident_id: str = Field(min_length=1, max_length=200)
    agent: str
    cause: str  # a flag kind or "agent_unreachable"
    severity: IncidentSeverity
    summary: str
    detected_at: datetime
    resolved_at: datetime | None = None
    runbook: str | None = None
    session_id: str | None = None
    workflow: str | None = None
    details: dict[str, JsonValue] = Field(default_factory=dict)

    @property
    def dedup_key(self) -> str:
        return dedup_key_for(self.incident_id)
