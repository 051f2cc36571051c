"""One row per agent: version, policy, connection, activity, spend, alerts, disabled."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from .. import format as fmt
from ..store import FleetRow, FleetStore, SessionKey
from ..text import cut
from .keyed_table import KeyedTable, RowSpec

STATE_STYLE = {"live": "green", "connecting": "yellow", "stale": "bold red"}


def connection_text(row: FleetRow, now: datetime) -> str:
    agent = row.agent
    if agent.state == "stale":
        seen = fmt.age(agent.last_seen, now) + " ago" if agent.last_seen else "never"
        return f"stale {seen}, retry {agent.retries}"
    return agent.state


def fleet_row(row: FleetRow, now: datetime) -> RowSpec:
    agent = row.agent
    info = agent.info
    policy = (info.policy.version or "none") if info is not None else "-"
    disabled = ",".join(agent.disabled_workflows)
    # what an operator acts on first, so it is on screen at 80 columns too
    return [
        (cut(agent.name, 24), "bold", agent.name),
        (connection_text(row, now), STATE_STYLE.get(agent.state, ""), agent.state),
        (str(row.active), "", row.active),
        (str(row.open_alerts), "bold yellow" if row.open_alerts else "", row.open_alerts),
        (fmt.usd(row.spend_per_min), "", row.spend_per_min),
        (disabled or "-", "bold red" if disabled else "", disabled),
        (info.version if info is not None else "-", "", info.version if info else ""),
        (policy, "", policy),
        (agent.url, "dim", agent.source),
    ]


class FleetTable(KeyedTable):
    COLUMNS = (
        ("agent", "agent"),
        ("connection", "connection"),
        ("active", "active"),
        ("alerts", "open alerts"),
        ("spend", "spend/min"),
        ("disabled", "disabled workflows"),
        ("version", "version"),
        ("policy", "policy"),
        ("endpoint", "endpoint"),
    )
    TIEBREAK = "endpoint"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.sort_by = "agent"

    def sync(
        self, store: FleetStore, now: datetime, changed: Collection[SessionKey] | None = None
    ) -> None:
        keep = self.current_key()
        rows = {r.agent.source: fleet_row(r, now) for r in store.fleet()}
        rows = {source: row for source, row in rows.items() if self.matches(row)}
        for gone in self.shown_keys() - set(rows):
            self.drop(gone)
        for source, row in rows.items():
            self.upsert(source, row)
        self.finish(keep)

    def selected(self) -> str | None:
        return self.current_key()
