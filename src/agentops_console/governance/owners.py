"""Owners: one person per role per agent; only they sign that role's part of a release."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import names
from .clock import now_iso
from .db import GovernanceDB, Tx
from .names import ROLES
from .registry import require_agent


@dataclass(frozen=True, slots=True)
class Owner:
    agent: str
    role: str
    person: str
    set_at: str
    set_by: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "role": self.role,
            "person": self.person,
            "set_at": self.set_at,
            "set_by": self.set_by,
        }


def write_owner(tx: Tx, owner: Owner) -> None:
    """The owners table's one writer (`owner set` and an import): a role has one owner,
    so a new one replaces the old."""
    tx.insert("owners", owner.as_dict(), replace=True)


def set_owner(gdb: GovernanceDB, *, actor: str, agent: str, role: str, person: str) -> Owner:
    names.role(role)
    who = names.person(person)
    owner = Owner(agent, role, who, now_iso(), actor)
    with gdb.transaction(actor) as tx:
        require_agent(tx, agent)
        before = tx.execute(
            "SELECT person FROM owners WHERE agent = ? AND role = ?", (agent, role)
        ).fetchone()
        write_owner(tx, owner)
        tx.audit(
            "owner.set",
            f"{agent}/{role}",
            agent=agent,
            details={"role": role, "person": who, "previous": before[0] if before else None},
        )
    return owner


def list_owners(gdb: GovernanceDB, agent: str | None = None) -> list[Owner]:
    if agent is not None:
        rows = gdb.query("SELECT * FROM owners WHERE agent = ? ORDER BY agent, role", (agent,))
    else:
        rows = gdb.query("SELECT * FROM owners ORDER BY agent, role")
    order = {r: i for i, r in enumerate(ROLES)}
    owners = [Owner(r["agent"], r["role"], r["person"], r["set_at"], r["set_by"]) for r in rows]
    return sorted(owners, key=lambda o: (o.agent, order.get(o.role, 99)))


def owner_of(gdb: GovernanceDB, agent: str, role: str) -> str | None:
    row = gdb.query_one("SELECT person FROM owners WHERE agent = ? AND role = ?", (agent, role))
    return None if row is None else str(row["person"])


def missing_roles(gdb: GovernanceDB, agent: str) -> list[str]:
    have = {o.role for o in list_owners(gdb, agent)}
    return [r for r in ROLES if r not in have]
