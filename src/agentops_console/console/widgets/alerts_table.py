"""Flags as alerts, newest first, with the time from the triggering event to display."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from .. import format as fmt
from ..store import AlertEntry, FleetStore
from .keyed_table import KeyedTable, RowSpec

SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": "dim"}


def alert_row(alert: AlertEntry) -> RowSpec:
    flag = alert.flag
    return [
        (fmt.clock_time(flag.at), "", -alert.number),
        (flag.severity, SEVERITY_STYLE.get(flag.severity, ""), flag.severity),
        (alert.agent, "", alert.agent),
        (alert.workflow or "-", "", alert.workflow or ""),
        (alert.session_id or "-", "", alert.session_id or ""),
        (flag.kind, "bold", flag.kind),
        (flag.message, "", flag.message),
        (fmt.millis(alert.latency_ms), "dim", alert.latency_ms),
        (alert.incident or "-", "cyan" if alert.incident else "", alert.incident or ""),
    ]


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
        ("severity", "severity"),
        ("agent", "agent"),
        ("workflow", "workflow"),
        ("session", "session"),
        ("kind", "kind"),
        ("message", "message"),
        ("latency", "event→display"),
        ("incident", "incident"),
    )
    TIEBREAK = "time"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.sort_by = "time"  # newest first: the time column sorts by -arrival number
        self.filter_text = ""
        self._entries: dict[str, AlertEntry] = {}

    def sync(self, store: FleetStore, clock: Callable[[], datetime]) -> None:
        keep = self.current_key()
        current = {a.key: a for a in store.alerts if alert_matches(a, self.filter_text)}
        for gone in self.shown_keys() - set(current):
            self.drop(gone)
            self._entries.pop(gone, None)
        for key, alert in current.items():
            if alert.displayed_at is None:
                alert.displayed_at = clock()
            self._entries[key] = alert
            self.upsert(key, alert_row(alert))
        self.finish(keep)

    def selected(self) -> AlertEntry | None:
        key = self.current_key()
        return None if key is None else self._entries.get(key)
