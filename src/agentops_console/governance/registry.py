"""The agent registry: where each agent's endpoint is and which env vars hold its tokens.

Two tokens per agent: `token_env` names the control token's variable (kill, disable,
budgets, approvals, policy), `read_token_env` the read-only token's (snapshot, sessions,
events, metrics), which is all a `--readonly` console needs. The DB stores the
variables' names, never a token.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from . import names
from .clock import now_iso
from .db import GovernanceDB, Tx
from .errors import Conflict, NotFound


@dataclass(frozen=True, slots=True)
class Agent:
    name: str
    endpoint: str
    token_env: str | None
    tenant: str | None
    workflows: tuple[str, ...] = ()
    risk: str = "medium"
    created_at: str = ""
    created_by: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    read_token_env: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "endpoint": self.endpoint,
            "token_env": self.token_env,
            "read_token_env": self.read_token_env,
            "tenant": self.tenant,
            "workflows": list(self.workflows),
            "risk": self.risk,
            "created_at": self.created_at,
            "created_by": self.created_by,
        }


def write_agent(tx: Tx, agent: Agent) -> None:
    """The agents table's one writer (`agent add` and an import); IntegrityError when the
    name is taken."""
    tx.insert(
        "agents",
        {
            "name": agent.name,
            "endpoint": agent.endpoint,
            "token_env": agent.token_env,
            "read_token_env": agent.read_token_env,
            "tenant": agent.tenant,
            "workflows": json.dumps(list(agent.workflows)),
            "risk": agent.risk,
            "created_at": agent.created_at,
            "created_by": agent.created_by,
        },
    )


def require_agent(db: GovernanceDB | Tx, name: str) -> dict[str, Any]:
    """The agent's row, or NotFound: the one "unknown agent" check of the governance DB,
    in or outside a transaction (inside one it sees the transaction's own writes)."""
    cursor = db.conn.execute("SELECT * FROM agents WHERE name = ?", (name,))
    row = cursor.fetchone()
    if row is None:
        raise NotFound(f"unknown agent {name!r}")
    return dict(zip([d[0] for d in cursor.description], row, strict=True))


def _from_row(row: dict[str, Any]) -> Agent:
    return Agent(
        name=row["name"],
        endpoint=row["endpoint"],
        token_env=row["token_env"],
        read_token_env=row["read_token_env"],
        tenant=row["tenant"],
        workflows=tuple(json.loads(row["workflows"] or "[]")),
        risk=row["risk"],
        created_at=row["created_at"],
        created_by=row["created_by"],
    )


def add_agent(
    gdb: GovernanceDB,
    *,
    actor: str,
    name: str,
    endpoint: str,
    token_env: str | None,
    tenant: str | None = None,
    workflows: list[str] | tuple[str, ...] = (),
    risk: str = "medium",
    read_token_env: str | None = None,
) -> Agent:
    agent = Agent(
        name=names.agent_name(name),
        endpoint=names.endpoint(endpoint),
        token_env=names.env_var(token_env) if token_env else None,
        read_token_env=names.env_var(read_token_env) if read_token_env else None,
        tenant=names.tenant(tenant),
        workflows=tuple(dict.fromkeys(names.workflow(w) for w in workflows)),
        risk=names.risk(risk),
        created_at=now_iso(),
        created_by=actor,
    )
    with gdb.transaction(actor) as tx:
        try:
            write_agent(tx, agent)
        except sqlite3.IntegrityError:
            raise Conflict(f"agent {name!r} is already registered") from None
        details = agent.as_dict()
        del details["created_at"], details["created_by"]
        tx.audit("agent.add", agent.name, agent=agent.name, details=details)
    return agent


def update_agent(
    gdb: GovernanceDB,
    *,
    actor: str,
    name: str,
    endpoint: str | None = None,
    token_env: str | None = None,
    tenant: str | None = None,
    workflows: list[str] | tuple[str, ...] | None = None,
    risk: str | None = None,
    read_token_env: str | None = None,
) -> tuple[Agent, dict[str, Any]]:
    """Change the fields given (None leaves one as it is); returns the agent and what
    changed, empty when nothing did. An endpoint moves on every redeploy."""
    wanted: dict[str, Any] = {}
    if endpoint is not None:
        wanted["endpoint"] = names.endpoint(endpoint)
    if token_env is not None:
        wanted["token_env"] = names.env_var(token_env) if token_env else None
    if read_token_env is not None:
        wanted["read_token_env"] = names.env_var(read_token_env) if read_token_env else None
    if tenant is not None:
        wanted["tenant"] = names.tenant(tenant)
    if workflows is not None:
        wanted["workflows"] = list(dict.fromkeys(names.workflow(w) for w in workflows))
    if risk is not None:
        wanted["risk"] = names.risk(risk)
    with gdb.transaction(actor) as tx:
        before = get_agent(gdb, name).as_dict()
        changed = {k: v for k, v in wanted.items() if before[k] != v}
        if not changed:
            tx.unchanged()
        else:
            stored = {k: json.dumps(v) if k == "workflows" else v for k, v in changed.items()}
            sets = ", ".join(f"{k} = ?" for k in stored)
            tx.execute(f"UPDATE agents SET {sets} WHERE name = ?", (*stored.values(), name))
            details = {k: {"from": before[k], "to": v} for k, v in changed.items()}
            tx.audit("agent.update", name, agent=name, details=details)
    return get_agent(gdb, name), changed


def get_agent(gdb: GovernanceDB, name: str) -> Agent:
    return _from_row(require_agent(gdb, name))


def list_agents(gdb: GovernanceDB) -> list[Agent]:
    return [_from_row(r) for r in gdb.query("SELECT * FROM agents ORDER BY name")]


def remove_agent(gdb: GovernanceDB, *, actor: str, name: str) -> None:
    """Removes the agent and its owners; releases, incidents and audit stay as history."""
    with gdb.transaction(actor) as tx:
        require_agent(tx, name)
        live = tx.execute(
            "SELECT version FROM releases WHERE agent = ? AND status = 'live'", (name,)
        ).fetchone()
        if live is not None:
            raise Conflict(
                f"agent {name!r} has live release {live[0]}; disable its workflows "
                "and roll back or retire it before removing the agent"
            )
        owners = tx.execute("SELECT role, person FROM owners WHERE agent = ?", (name,)).fetchall()
        tx.execute("DELETE FROM owners WHERE agent = ?", (name,))
        tx.execute("DELETE FROM agents WHERE name = ?", (name,))
        tx.audit("agent.remove", name, agent=name, details={"owners": dict(owners)})
