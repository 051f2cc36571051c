"""Releases and sign-offs.

A release is an agent version plus its rubric answers and Cedar policy; the content hash
over those binds every sign-off, so any change makes earlier sign-offs stale. Only the
registered owner of a role signs it, never the release's author, and sign-offs expire.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from . import names
from .audit import canonical
from .clock import iso, utcnow
from .db import GovernanceDB, Tx
from .errors import BadInput, Conflict, NotFound
from .policy_facts import PolicyFacts, derive, facts_from_json, facts_to_json
from .registry import require_agent
from .rubric import Rubric, answer_problems

Decision = Literal["approve", "reject"]
RoleStatus = Literal["approved", "rejected", "unsigned", "stale", "expired", "no-owner"]
STATUSES = ("proposed", "live", "retired", "rolled_back")


def content_hash(agent: str, version: str, answers: dict[str, Any], policy: str) -> str:
    document = {
        "agent": agent,
        "version": version,
        "answers": answers,
        "policy_sha256": hashlib.sha256(policy.encode("utf-8")).hexdigest(),
    }
    return hashlib.sha256(canonical(document).encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Release:
    id: int
    agent: str
    version: str
    revision: int
    author: str
    rubric: str
    answers: dict[str, Any]
    policy: str
    policy_sha256: str
    content_hash: str
    status: str
    created_at: str
    updated_at: str
    gate_passed_at: str | None
    promoted_at: str | None
    facts: str | None = None
    authors: tuple[str, ...] = ()

    @property
    def everyone_who_wrote_it(self) -> tuple[str, ...]:
        """The author of every revision; separation of duties bars each from signing."""
        return self.authors or (self.author,)

    def policy_facts(self) -> PolicyFacts:
        """The facts stored at propose time, derived again only when missing or outdated."""
        stored = facts_from_json(self.facts)
        if stored is not None:
            return stored
        return derive(self.policy, self.catalog, f"{self.agent}@{self.version}")

    def answer(self, qid: str) -> dict[str, Any]:
        value = self.answers.get(qid, {})
        return value if isinstance(value, dict) else {}

    @property
    def catalog(self) -> dict[str, dict[str, Any]]:
        tools = self.answers.get("tools", {})
        return tools if isinstance(tools, dict) else {}

    def as_dict(self, full: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "agent": self.agent,
            "version": self.version,
            "revision": self.revision,
            "author": self.author,
            "authors": list(self.everyone_who_wrote_it),
            "rubric": self.rubric,
            "status": self.status,
            "content_hash": self.content_hash,
            "policy_sha256": self.policy_sha256,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "gate_passed_at": self.gate_passed_at,
            "promoted_at": self.promoted_at,
        }
        if full:
            data["answers"] = self.answers
            data["policy"] = self.policy
        return data


_RELEASE_COLUMNS = (
    "id, agent, version, revision, author, rubric, answers, policy, policy_sha256,"
    " content_hash, status, created_at, updated_at, gate_passed_at, promoted_at, facts, authors"
)


def _release(row: dict[str, Any]) -> Release:
    values = dict(row)
    values["answers"] = json.loads(values["answers"])
    values["authors"] = tuple(json.loads(values["authors"] or "[]"))
    return Release(**values)


@dataclass(frozen=True, slots=True)
class SignOff:
    id: int
    release_id: int
    role: str
    person: str
    decision: str
    comment: str
    content_hash: str
    signed_at: str
    expires_at: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "person": self.person,
            "decision": self.decision,
            "comment": self.comment,
            "content_hash": self.content_hash,
            "signed_at": self.signed_at,
            "expires_at": self.expires_at,
        }


@dataclass(frozen=True, slots=True)
class RoleState:
    role: str
    owner: str | None
    status: RoleStatus
    signoff: SignOff | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "owner": self.owner,
            "status": self.status,
            "signoff": self.signoff.as_dict() if self.signoff else None,
        }


def write_release(
    tx: Tx,
    *,
    agent: str,
    version: str,
    revision: int,
    author: str,
    authors: list[str],
    rubric: str,
    answers: dict[str, Any],
    policy: str,
    content_hash: str,
    created_at: str,
    updated_at: str,
    facts: str | None,
) -> int:
    """The releases table's one writer (`release propose` and an import); returns the id.
    A release always comes in proposed: live and a gate pass are earned afterwards."""
    return tx.insert(
        "releases",
        {
            "agent": agent,
            "version": version,
            "revision": revision,
            "author": author,
            "rubric": rubric,
            "answers": canonical(answers),
            "policy": policy,
            "policy_sha256": hashlib.sha256(policy.encode("utf-8")).hexdigest(),
            "content_hash": content_hash,
            "status": "proposed",
            "created_at": created_at,
            "updated_at": updated_at,
            "facts": facts,
            "authors": json.dumps(authors),
        },
    )


#: A sign-off's fields besides its release, in the order exports list them.
SIGNOFF_FIELDS = (
    "role",
    "person",
    "decision",
    "comment",
    "content_hash",
    "signed_at",
    "expires_at",
)


def write_signoff(tx: Tx, release_id: int, fields: dict[str, Any]) -> int:
    """The signoffs table's one writer (`signoff` and an import); returns the id."""
    return tx.insert(
        "signoffs", {"release_id": release_id, **{k: fields[k] for k in SIGNOFF_FIELDS}}
    )


#: An evaluation's fields besides its release, in the order exports list them
#: (`metrics` is the result document as JSON text, as stored).
EVALUATION_FIELDS = (
    "agent",
    "version",
    "content_hash",
    "kind",
    "suite_name",
    "suite_path",
    "suite_sha256",
    "target",
    "cases",
    "passed",
    "metrics",
    "started_at",
    "finished_at",
    "recorded_at",
    "recorded_by",
)


def write_evaluation(tx: Tx, release_id: int, fields: dict[str, Any]) -> int:
    """The evaluations table's one writer (`eval run/replay/compare` and an import);
    returns the id. `content_hash` is the one evaluated, which may be stale already."""
    return tx.insert(
        "evaluations", {"release_id": release_id, **{k: fields[k] for k in EVALUATION_FIELDS}}
    )


def validate_answers(
    rubric: Rubric, answers: dict[str, Any], origin: str, agent: str, version: str
) -> None:
    problems = answer_problems(rubric, answers)
    for key, expected in (("agent", agent), ("version", version), ("rubric", rubric.name)):
        if key in answers and answers[key] != expected:
            problems.append(f"{key} = {answers[key]!r} but the release is for {expected!r}")
    if problems:
        raise BadInput(f"{origin}: " + "; ".join(problems))


def propose(
    gdb: GovernanceDB,
    *,
    actor: str,
    agent: str,
    version: str,
    answers: dict[str, Any],
    policy: str,
    author: str,
    rubric: Rubric,
    answers_origin: str = "answers",
    policy_origin: str = "policy",
) -> tuple[Release, str]:
    """Record a release (or a new revision of one not yet live).

    Returns the release and what happened: "created", "revised" or "unchanged".
    """
    names.version(version)
    who = names.person(author)
    require_agent(gdb, agent)  # before blaming the answers file for it
    validate_answers(rubric, answers, answers_origin, agent, version)
    tools = answers.get("tools", {})
    facts = facts_to_json(derive(policy, tools if isinstance(tools, dict) else {}, policy_origin))
    digest = content_hash(agent, version, answers, policy)
    policy_digest = hashlib.sha256(policy.encode("utf-8")).hexdigest()
    stamp = iso(utcnow())
    with gdb.transaction(actor) as tx:
        require_agent(tx, agent)
        existing = tx.execute(
            "SELECT id, content_hash, status, revision, author, authors FROM releases"
            " WHERE agent = ? AND version = ?",
            (agent, version),
        ).fetchone()
        answers_text = canonical(answers)
        if existing is None:
            write_release(
                tx,
                agent=agent,
                version=version,
                revision=1,
                author=who,
                authors=[who],
                rubric=rubric.name,
                answers=answers,
                policy=policy,
                content_hash=digest,
                created_at=stamp,
                updated_at=stamp,
                facts=facts,
            )
            outcome = "created"
        else:
            release_id, old_hash, status, revision, old_author, old_authors = existing
            authors = json.loads(old_authors or "[]") or [old_author]
            if who not in authors:
                authors.append(who)
            if old_hash == digest and old_author == who:
                tx.unchanged()
                outcome = "unchanged"
            elif status != "proposed":
                raise Conflict(
                    f"release {agent} {version} is {status}; propose a new version instead"
                )
            else:
                tx.execute(
                    "UPDATE releases SET revision = ?, author = ?, rubric = ?, answers = ?,"
                    " policy = ?, policy_sha256 = ?, content_hash = ?, updated_at = ?,"
                    " facts = ?, gate_passed_at = NULL, authors = ? WHERE id = ?",
                    (
                        revision + 1,
                        who,
                        rubric.name,
                        answers_text,
                        policy,
                        policy_digest,
                        digest,
                        stamp,
                        facts,
                        json.dumps(authors),
                        release_id,
                    ),
                )
                outcome = "revised"
        if outcome != "unchanged":
            tx.audit(
                f"release.{'propose' if outcome == 'created' else 'revise'}",
                f"{agent}@{version}",
                agent=agent,
                details={"author": who, "content_hash": digest, "policy_sha256": policy_digest},
            )
    return get_release(gdb, agent, version), outcome


def get_release(gdb: GovernanceDB, agent: str, version: str) -> Release:
    row = gdb.query_one(
        f"SELECT {_RELEASE_COLUMNS} FROM releases WHERE agent = ? AND version = ?",
        (agent, version),
    )
    if row is None:
        require_agent(gdb, agent)
        raise NotFound(f"unknown version {version!r} of agent {agent!r}")
    return _release(row)


def live_release(gdb: GovernanceDB, agent: str) -> Release | None:
    row = gdb.query_one(
        f"SELECT {_RELEASE_COLUMNS} FROM releases WHERE agent = ? AND status = 'live'", (agent,)
    )
    return None if row is None else _release(row)


def list_releases(gdb: GovernanceDB, agent: str | None = None) -> list[Release]:
    sql = f"SELECT {_RELEASE_COLUMNS} FROM releases"
    params: tuple[Any, ...] = ()
    if agent is not None:
        sql += " WHERE agent = ?"
        params = (agent,)
    return [_release(r) for r in gdb.query(sql + " ORDER BY agent, id", params)]


def signoffs(gdb: GovernanceDB, release_id: int) -> list[SignOff]:
    rows = gdb.query("SELECT * FROM signoffs WHERE release_id = ? ORDER BY id", (release_id,))
    return [SignOff(**r) for r in rows]


def rollback_problem(gdb: GovernanceDB, target: Release) -> str | None:
    """Why the agent cannot go back to `target`, or None when it can: the one rule that
    rollback plans, rollback policy pushes and promote's hint all follow. A target once
    passed the gate, is older than the live release, and nobody has vetoed it since (its
    sign-offs may have expired: in an incident the last approved release stays reachable).
    """
    name = f"{target.agent} {target.version}"
    if not target.gate_passed_at:
        return f"{name} never passed the release gate; refusing to roll back to it"
    live = live_release(gdb, target.agent)
    if live is not None and live.id == target.id:
        return f"{name} is already live"
    if live is not None and target.id > live.id:
        return (
            f"{name} is newer than the live {live.version}; a rollback goes back "
            "(promote a newer release through the gate instead)"
        )
    latest: dict[str, SignOff] = {}
    for s in signoffs(gdb, target.id):
        if s.content_hash == target.content_hash:
            latest[s.role] = s
    vetoes = [f"{r} by {s.person}" for r, s in sorted(latest.items()) if s.decision == "reject"]
    if vetoes:
        return (
            f"{name} was rejected since it passed the gate ({', '.join(vetoes)}); "
            "refusing to roll back to it"
        )
    return None


def role_states(
    gdb: GovernanceDB,
    release: Release,
    rubric: Rubric,
    now: datetime | None = None,
    *,
    owners_then_unknown: bool = False,
) -> list[RoleState]:
    """Each required role's standing at `now`: the latest sign-off made by then by the
    role's current owner. `owners_then_unknown` (judging a past moment, e.g. on import,
    when the owners of that time are not on record) counts the latest sign-off for the
    role by anyone who is not an author."""
    moment = iso(now or utcnow())
    owners = dict(
        gdb.conn.execute(
            "SELECT role, person FROM owners WHERE agent = ?", (release.agent,)
        ).fetchall()
    )
    latest: dict[str, SignOff] = {}
    authors = release.everyone_who_wrote_it
    for s in signoffs(gdb, release.id):
        owner_ok = owners_then_unknown or owners.get(s.role) == s.person
        if owner_ok and s.person not in authors and s.signed_at <= moment:
            latest[s.role] = s
    states: list[RoleState] = []
    for role in rubric.roles:
        owner = owners.get(role)
        found = latest.get(role)
        status: RoleStatus
        if owner is None:
            status = "no-owner"
        elif found is None:
            status = "unsigned"
        elif found.content_hash != release.content_hash:
            status = "stale"
        elif found.expires_at <= moment:
            status = "expired"
        else:
            status = "approved" if found.decision == "approve" else "rejected"
        states.append(RoleState(role, owner, status, found))
    return states


def signing_roles(
    gdb: GovernanceDB, release: Release, person: str, roles: list[str] | None, rubric: Rubric
) -> list[str]:
    """The roles `person` may sign on `release` (all of `roles`, or every role they own);
    raises when separation of duties or ownership forbids it. The CLI asks this before a
    long interactive review, and `sign` again under the write lock."""
    who = names.person(person)
    for role in roles or []:
        names.role(role)
        if role not in rubric.roles:
            raise BadInput(f"role {role!r} signs nothing in rubric {rubric.name!r}")
    where = f"{release.agent} {release.version}"
    if who in release.everyone_who_wrote_it:
        raise Conflict(f"{who} is an author of {where} and cannot sign it (separation of duties)")
    owners = dict(
        gdb.conn.execute(
            "SELECT role, person FROM owners WHERE agent = ?", (release.agent,)
        ).fetchall()
    )
    wanted = roles or [r for r in rubric.roles if owners.get(r) == who]
    if not wanted:
        raise Conflict(f"{who} owns no role of agent {release.agent!r} that signs this rubric")
    for role in wanted:
        owner = owners.get(role)
        if owner is None:
            raise NotFound(f"agent {release.agent!r} has no registered {role} owner")
        if owner != who:
            raise Conflict(
                f"{who} is not the registered {role} owner of {release.agent} ({owner} is)"
            )
    return wanted


def sign(
    gdb: GovernanceDB,
    *,
    person: str,
    agent: str,
    version: str,
    decision: Decision,
    comment: str,
    rubric: Rubric,
    roles: list[str] | None = None,
    reviewed_hash: str | None = None,
    now: datetime | None = None,
) -> list[SignOff]:
    """Record `person`'s decision for each of `roles` (default: every role they own here).

    `reviewed_hash` is the content hash the person looked at; if the release changed
    since, nothing is signed.
    """
    if decision not in ("approve", "reject"):
        raise BadInput(f"decision must be approve or reject, not {decision!r}")
    if decision == "reject" and not comment.strip():
        raise BadInput("a rejection needs a --comment saying why")
    who = names.person(person)
    signed_at = now or utcnow()
    expires = signed_at + timedelta(days=rubric.signoff_valid_days)
    made: list[SignOff] = []
    with gdb.transaction(who) as tx:
        release = get_release(gdb, agent, version)
        if reviewed_hash is not None and reviewed_hash != release.content_hash:
            raise Conflict(f"release {agent} {version} changed while you reviewed it; review again")
        for role in signing_roles(gdb, release, who, roles, rubric):
            fields = {
                "role": role,
                "person": who,
                "decision": decision,
                "comment": comment,
                "content_hash": release.content_hash,
                "signed_at": iso(signed_at),
                "expires_at": iso(expires),
            }
            made.append(SignOff(write_signoff(tx, release.id, fields), release.id, **fields))
            tx.audit(
                f"signoff.{decision}",
                f"{agent}@{version}",
                agent=agent,
                details={"role": role, "comment": comment, "content_hash": release.content_hash},
            )
    return made
