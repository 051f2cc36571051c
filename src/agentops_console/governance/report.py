"""The operations report: incident response times per agent and sign-off coverage of
the releases that are live."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .clock import parse_ts
from .db import GovernanceDB
from .incidents import Incident, list_incidents
from .releases import list_releases, role_states
from .rubric import Rubric


def _mean_minutes(pairs: list[tuple[str, str | None]]) -> float | None:
    spans = [(parse_ts(end) - parse_ts(start)).total_seconds() / 60 for start, end in pairs if end]
    return round(sum(spans) / len(spans), 2) if spans else None


@dataclass(frozen=True, slots=True)
class ResponseTimes:
    incidents: int
    open: int
    mttd_min: float | None
    mtta_min: float | None
    mttr_min: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "incidents": self.incidents,
            "open": self.open,
            "mttd_min": self.mttd_min,
            "mtta_min": self.mtta_min,
            "mttr_min": self.mttr_min,
        }


def response_times(incidents: list[Incident]) -> ResponseTimes:
    return ResponseTimes(
        incidents=len(incidents),
        open=sum(1 for i in incidents if i.status != "resolved"),
        mttd_min=_mean_minutes([(i.started_at, i.detected_at) for i in incidents]),
        mtta_min=_mean_minutes([(i.detected_at, i.acknowledged_at) for i in incidents]),
        mttr_min=_mean_minutes([(i.detected_at, i.resolved_at) for i in incidents]),
    )


def build_report(gdb: GovernanceDB, rubric: Rubric, now: datetime | None = None) -> dict[str, Any]:
    incidents = list_incidents(gdb)
    agents = sorted(
        {i.agent for i in incidents} | {r["name"] for r in gdb.query("SELECT name FROM agents")}
    )
    per_agent = {
        a: response_times([i for i in incidents if i.agent == a]).as_dict() for a in agents
    }
    live = [r for r in list_releases(gdb) if r.status == "live"]
    coverage = []
    signed_total = 0
    required_total = 0
    for release in live:
        states = role_states(gdb, release, rubric, now)
        approved = [s.role for s in states if s.status == "approved"]
        signed_total += len(approved)
        required_total += len(states)
        coverage.append(
            {
                "agent": release.agent,
                "version": release.version,
                "roles_signed": len(approved),
                "roles_required": len(states),
                "missing": [f"{s.role} ({s.status})" for s in states if s.status != "approved"],
            }
        )
    return {
        "overall": response_times(incidents).as_dict(),
        "agents": per_agent,
        "live_releases": coverage,
        "signoff_coverage": (round(signed_total / required_total, 4) if required_total else None),
    }
