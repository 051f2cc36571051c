"""Pending human checkpoints across the fleet, oldest request first."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from .. import format as fmt
from ..store import ApprovalEntry, FleetStore, SessionKey
from ..text import json_text
from .keyed_table import KeyedTable, RowSpec


def approval_row(entry: ApprovalEntry, now: datetime) -> RowSpec:
    a = entry.approval
    remaining = max(0, int((a.expires_at - now).total_seconds()))
    return [
        (entry.agent, "", entry.agent),
        (a.session_id, "", a.session_id),
        (a.workflow, "", a.workflow),
        (a.principal, "", a.principal),
        (a.tool, "bold", a.tool),
        (json_text(a.arguments, 60), "", ""),
        (a.reason, "", a.reason),
        (fmt.age(a.requested_at, now) + " ago", "", a.requested_at.timestamp()),
        (f"{remaining}s", "yellow" if remaining < 60 else "", remaining),
        (a.id, "dim", (entry.source, a.id)),
    ]


def approval_key(entry: ApprovalEntry) -> str:
    return f"{entry.source}\x00{entry.approval.id}"


class ApprovalsTable(KeyedTable):
    COLUMNS = (
        ("agent", "agent"),
        ("session", "session"),
        ("workflow", "workflow"),
        ("principal", "principal"),
        ("tool", "tool"),
        ("arguments", "arguments"),
        ("reason", "reason"),
        ("requested", "requested"),
        ("expires", "expires in"),
        ("id", "approval"),
    )
    TIEBREAK = "id"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.sort_by = "requested"
        self._entries: dict[str, ApprovalEntry] = {}

    def sync(
        self, store: FleetStore, now: datetime, changed: Collection[SessionKey] | None = None
    ) -> None:
        keep = self.current_key()
        rows = {approval_key(e): (e, approval_row(e, now)) for e in store.approvals.values()}
        rows = {key: shown for key, shown in rows.items() if self.matches(shown[1])}
        for gone in self.shown_keys() - set(rows):
            self.drop(gone)
        self._entries = {key: entry for key, (entry, _) in rows.items()}
        for key, (_, row) in rows.items():
            self.upsert(key, row)
        self.finish(keep)

    def selected(self) -> ApprovalEntry | None:
        key = self.current_key()
        return None if key is None else self._entries.get(key)
