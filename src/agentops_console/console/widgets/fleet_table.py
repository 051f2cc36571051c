"""One row per agent: version, policy, connection, activity, spend, alerts, disabled."""

from __future__ import annotations

from datetime import datetime

from .. import format as fmt
from ..store import FleetRow, FleetStore
from ..text import cut
from .keyed_table import KeyedTable, RowSpec

STATE_STYLE = {"live": "green", "connecting": "yellow", "stale": "bold red"}


def connection_text(row: FleetRow, now: datetime) -> str:
    agent = row.agent
    if agent.state == "stale":
        seen = fmt.age(agent.last_seen, now) + " ago" if agent.last_seen else "never"
        return f"stale, seen {seen}, retry {agent.retries}"
    return agent.state


def fleet_row(row: FleetRow, now: datetime) -> RowSpec:
    agent = row.agent
    info = agent.info
    policy = (info.policy.version or "none") if info is not None else "-"
    disabled = ",".join(agent.disabled_workflows)
    return [
        (cut(agent.name, 28), "bold", agent.name),
        (info.version if info is not None else "-", "", info.version if info else ""),
        (policy, "", policy),
        (connection_text(row, now), STATE_STYLE.get(agent.state, ""), agent.state),
        (str(row.active), "", row.active),
        (fmt.usd(row.spend_per_min), "", row.spend_per_min),
        (str(row.open_alerts), "bold yellow" if row.open_alerts else "", row.open_alerts),
        (disabled or "-", "bold red" if disabled else "", disabled),
        (agent.url, "dim", agent.source),
    ]


class FleetTable(KeyedTable):
    COLUMNS = (
        ("agent", "agent"),
        ("version", "version"),
        ("policy", "policy"),
        ("connection", "connection"),
        ("active", "active"),
        ("spend", "spend/min"),
        ("alerts", "open alerts"),
        ("disabled", "disabled workflows"),
        ("endpoint", "endpoint"),
    )
    TIEBREAK = "endpoint"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.sort_by = "agent"

    def sync(self, store: FleetStore, now: datetime) -> None:
        keep = self.current_key()
        rows = store.fleet()
        for gone in self.shown_keys() - {r.agent.source for r in rows}:
            self.drop(gone)
        for row in rows:
            self.upsert(row.agent.source, fleet_row(row, now))
        self.finish(keep)

    def selected(self) -> str | None:
        return self.current_key()
