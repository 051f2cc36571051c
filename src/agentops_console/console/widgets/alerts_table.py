"""Flags as alerts, newest first, with the time from the triggering event to display.

Closed alerts (the store's `alert_open` says which) stay listed, dimmed, with `closed` in
the state column: the view's open rows are exactly what the header and the fleet count.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from .. import format as fmt
from ..store import AlertEntry, FleetStore, SessionKey
from .keyed_table import KeyedTable, RowSpec

SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": "dim"}


def alert_row(alert: AlertEntry, is_open: bool = True) -> RowSpec:
    flag = alert.flag
    dim = "" if is_open else "dim"
    row: RowSpec = [
        (fmt.clock_time(flag.at), dim, -alert.number),
        ("open" if is_open else "closed", "bold" if is_open else "dim", is_open),
        (flag.severity, SEVERITY_STYLE.get(flag.severity, "") if is_open else dim, flag.severity),
        (flag.kind, "bold" if is_open else dim, flag.kind),
        (alert.agent, dim, alert.agent),
        (alert.workflow or "-", dim, alert.workflow or ""),
        (alert.session_id or "-", dim, alert.session_id or ""),
        (flag.message, dim, flag.message),
        (alert.incident or "-", "cyan" if alert.incident else dim, alert.incident or ""),
        (fmt.millis(alert.latency_ms), "dim", alert.latency_ms),
    ]
    return row


def alert_matches(alert: AlertEntry, needle: str) -> bool:
    if not needle.strip():
        return True
    flag = alert.flag
    haystack = " ".join(
        (alert.agent, alert.workflow or "", alert.session_id or "", flag.kind, flag.message)
    ).lower()
    return all(word in haystack for word in needle.lower().split())


class AlertsTable(KeyedTable):
    COLUMNS = (
        ("time", "time"),
        ("state", "state"),
        ("severity", "severity"),
        ("kind", "kind"),
        ("agent", "agent"),
        ("workflow", "workflow"),
        ("session", "session"),
        ("message", "message"),
        ("incident", "incident"),
        ("latency", "event→display"),
    )
    TIEBREAK = "time"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.sort_by = "time"  # newest first: the time column sorts by -arrival number
        self._entries: dict[str, AlertEntry] = {}

    def sync(
        self, store: FleetStore, now: datetime, changed: Collection[SessionKey] | None = None
    ) -> None:
        keep = self.current_key()
        current = {a.key: a for a in store.alerts if alert_matches(a, self.filter_text)}
        for gone in self.shown_keys() - set(current):
            self.drop(gone)
            self._entries.pop(gone, None)
        for key, alert in current.items():
            if alert.displayed_at is None:
                alert.displayed_at = now
            self._entries[key] = alert
            self.upsert(key, alert_row(alert, store.alert_open(alert)))
        self.finish(keep)

    def selected(self) -> AlertEntry | None:
        key = self.current_key()
        return None if key is None else self._entries.get(key)
