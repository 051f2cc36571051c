"""Moving a release live: promotion through the gate, and the switch rollback uses."""

from __future__ import annotations

from pathlib import Path

from .clock import now_iso
from .db import GovernanceDB, Tx
from .errors import BadInput, Conflict, NotReady
from .gate import GateResult, check
from .releases import Release, get_release, rollback_problem
from .rubric import Rubric


def make_live(
    tx: Tx, release: Release, *, previous_status: str, action: str, at: str | None = None
) -> str | None:
    """Inside a transaction: `release` becomes the live one (promoted `at`, default now);
    the old live one gets `previous_status`. Returns the version live before, if any."""
    before = tx.execute(
        "SELECT version FROM releases WHERE agent = ? AND status = 'live' AND id != ?",
        (release.agent, release.id),
    ).fetchone()
    stamp = at or now_iso()
    tx.execute(
        "UPDATE releases SET status = ? WHERE agent = ? AND status = 'live' AND id != ?",
        (previous_status, release.agent, release.id),
    )
    tx.execute(
        "UPDATE releases SET status = 'live', promoted_at = ?,"
        " gate_passed_at = COALESCE(gate_passed_at, ?) WHERE id = ?",
        (stamp, stamp, release.id),
    )
    tx.audit(
        action,
        f"{release.agent}@{release.version}",
        agent=release.agent,
        details={"previous": before[0] if before else None, "content_hash": release.content_hash},
    )
    return None if before is None else str(before[0])


def promote(
    gdb: GovernanceDB, *, actor: str, agent: str, version: str, rubric: Rubric, runbooks: Path
) -> GateResult:
    """Mark a release live, only when the gate passes (checked inside the write lock)."""
    with gdb.transaction(actor) as tx:
        release = get_release(gdb, agent, version)
        if release.status not in ("proposed", "live"):
            # retired (withdrawn or replaced) and rolled_back releases stay out of service;
            # going back to an earlier release is `agentops rollback`
            hint = (
                f"to go back to it: agentops rollback {agent} --to {version}"
                if rollback_problem(gdb, release) is None
                else "propose a new version"
            )
            raise Conflict(
                f"{agent} {version} is {release.status}; only a proposed release is promoted"
                f" ({hint})"
            )
        result = check(gdb, release, rubric, runbooks)
        if not result.ready:
            raise NotReady(f"{agent} {version} is not ready: " + "; ".join(result.reasons))
        if release.status == "live":
            tx.unchanged()
            return result
        make_live(tx, release, previous_status="retired", action="release.promote")
    return result


def retire(gdb: GovernanceDB, *, actor: str, agent: str, version: str, reason: str) -> str:
    """Take a release out of service: a live one when the agent is decommissioned (then it
    has no live release and can be removed), a proposed one when it is withdrawn.
    Returns the status it had."""
    if not reason.strip():
        raise BadInput("retiring a release needs a --reason")
    with gdb.transaction(actor) as tx:
        release = get_release(gdb, agent, version)
        if release.status not in ("live", "proposed"):
            raise Conflict(f"{agent} {version} is already {release.status}")
        tx.execute("UPDATE releases SET status = 'retired' WHERE id = ?", (release.id,))
        tx.audit(
            "release.retire",
            f"{agent}@{version}",
            agent=agent,
            details={"from": release.status, "reason": reason.strip()},
        )
    return release.status
