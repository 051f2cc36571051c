"""Governance as code: the registry, owners, releases and sign-offs as TOML files
(`agentops export DIR`) that a team reviews in git, and loading them back
(`agentops import DIR`), which changes nothing when the DB already matches.

Layout: agents/<agent>.toml (with its owners) and releases/<agent>/<version>.toml
(answers, policy text and sign-offs). An import is one transaction.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .db import GovernanceDB, Tx
from .errors import BadInput, Conflict, NotFound
from .registry import list_agents
from .releases import content_hash, list_releases, signoffs
from .tomlfile import load_toml

_AGENT_KEYS = ("endpoint", "token_env", "tenant", "workflows", "risk")
_SIGNOFF_KEYS = ("role", "person", "decision", "comment", "content_hash", "signed_at", "expires_at")


def _clean(data: dict[str, Any]) -> dict[str, Any]:
    """TOML has no null: drop None values (and they read back as absent)."""
    return {k: v for k, v in data.items() if v is not None}


def _write(path: Path, data: dict[str, Any]) -> None:
    import tomli_w

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(tomli_w.dumps(data, multiline_strings=True), encoding="utf-8")
    tmp.replace(path)


def export_dir(gdb: GovernanceDB, directory: Path) -> list[Path]:
    written: list[Path] = []
    owners: dict[str, dict[str, str]] = {}
    for row in gdb.query("SELECT agent, role, person FROM owners ORDER BY agent, role"):
        owners.setdefault(row["agent"], {})[row["role"]] = row["person"]
    for agent in list_agents(gdb):
        data = _clean({k: v for k, v in agent.as_dict().items() if k != "created_at"})
        data["owners"] = owners.get(agent.name, {})
        path = directory / "agents" / f"{agent.name}.toml"
        _write(path, data)
        written.append(path)
    for release in list_releases(gdb):
        data = _clean({k: v for k, v in release.as_dict().items() if k != "id"})
        data["policy"] = release.policy
        data["answers"] = release.answers
        data["signoffs"] = [_clean(s.as_dict()) for s in signoffs(gdb, release.id)]
        path = directory / "releases" / release.agent / f"{release.version}.toml"
        _write(path, data)
        written.append(path)
    return written


def _str(data: dict[str, Any], key: str, origin: Path) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise BadInput(f"{origin}: `{key}` must be a non-empty string")
    return value


def _import_agent(tx: Tx, path: Path, changes: list[str]) -> None:
    from . import names

    data = load_toml(path)
    name = names.agent_name(_str(data, "name", path))
    wanted = {
        "endpoint": names.endpoint(_str(data, "endpoint", path)),
        "token_env": names.env_var(data["token_env"]) if data.get("token_env") else None,
        "tenant": data.get("tenant"),
        "workflows": json.dumps([names.workflow(w) for w in data.get("workflows", [])]),
        "risk": names.risk(data.get("risk", "medium")),
    }
    row = tx.execute(
        f"SELECT {', '.join(_AGENT_KEYS)} FROM agents WHERE name = ?", (name,)
    ).fetchone()
    if row is None:
        tx.execute(
            "INSERT INTO agents (name, endpoint, token_env, tenant, workflows, risk, created_at,"
            " created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (name, *wanted.values(), str(data.get("created_at", "")) or _now(), tx.actor),
        )
        tx.audit("import.agent.add", name, agent=name, details={**wanted, "file": str(path)})
        changes.append(f"agent {name} added")
    elif dict(zip(_AGENT_KEYS, row, strict=True)) != wanted:
        sets = ", ".join(f"{k} = ?" for k in _AGENT_KEYS)
        tx.execute(f"UPDATE agents SET {sets} WHERE name = ?", (*wanted.values(), name))
        tx.audit("import.agent.update", name, agent=name, details={**wanted, "file": str(path)})
        changes.append(f"agent {name} updated")
    owners = data.get("owners", {})
    if not isinstance(owners, dict):
        raise BadInput(f"{path}: [owners] must be a table of role = person")
    for role, person in sorted(owners.items()):
        names.role(role)
        who = names.person(str(person))
        have = tx.execute(
            "SELECT person FROM owners WHERE agent = ? AND role = ?", (name, role)
        ).fetchone()
        if have is None or have[0] != who:
            tx.execute(
                "INSERT OR REPLACE INTO owners (agent, role, person, set_at, set_by)"
                " VALUES (?, ?, ?, ?, ?)",
                (name, role, who, _now(), tx.actor),
            )
            tx.audit("import.owner.set", f"{name}/{role}", agent=name, details={"person": who})
            changes.append(f"owner {name}/{role} = {who}")


def _now() -> str:
    from .clock import now_iso

    return now_iso()


def _import_release(tx: Tx, path: Path, changes: list[str]) -> None:
    from .audit import canonical
    from .policy_facts import derive, facts_to_json
    from .releases import STATUSES

    data = load_toml(path)
    agent = _str(data, "agent", path)
    version = _str(data, "version", path)
    policy = _str(data, "policy", path)
    answers = data.get("answers")
    if not isinstance(answers, dict):
        raise BadInput(f"{path}: [answers] is missing")
    digest = content_hash(agent, version, answers, policy)
    if data.get("content_hash") != digest:
        raise BadInput(f"{path}: content_hash does not match the answers and policy in the file")
    tools = answers.get("tools", {})
    facts = facts_to_json(derive(policy, tools if isinstance(tools, dict) else {}, str(path)))
    if tx.execute("SELECT 1 FROM agents WHERE name = ?", (agent,)).fetchone() is None:
        raise NotFound(f"{path}: unknown agent {agent!r}")
    status = data.get("status", "proposed")
    if status not in STATUSES:
        raise BadInput(f"{path}: invalid status {status!r}")
    row = tx.execute(
        "SELECT id, content_hash FROM releases WHERE agent = ? AND version = ?", (agent, version)
    ).fetchone()
    target = f"{agent}@{version}"
    if row is None:
        if status == "live":
            tx.execute(
                "UPDATE releases SET status = 'retired' WHERE agent = ? AND status = 'live'",
                (agent,),
            )
        import hashlib

        cursor = tx.execute(
            "INSERT INTO releases (agent, version, revision, author, rubric, answers, policy,"
            " policy_sha256, content_hash, status, created_at, updated_at, gate_passed_at,"
            " promoted_at, facts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                agent,
                version,
                int(data.get("revision", 1)),
                _str(data, "author", path),
                str(data.get("rubric", "deployment")),
                canonical(answers),
                policy,
                hashlib.sha256(policy.encode("utf-8")).hexdigest(),
                digest,
                status,
                str(data.get("created_at", _now())),
                str(data.get("updated_at", _now())),
                data.get("gate_passed_at"),
                data.get("promoted_at"),
                facts,
            ),
        )
        release_id = int(cursor.lastrowid or 0)
        tx.audit(
            "import.release",
            target,
            agent=agent,
            details={"content_hash": digest, "status": status},
        )
        changes.append(f"release {target} added")
    else:
        release_id, existing = row
        if existing != digest:
            raise Conflict(
                f"{path}: {target} differs from the release in the DB; propose a new version"
            )
    for entry in data.get("signoffs", []):
        if not isinstance(entry, dict) or any(k not in entry for k in _SIGNOFF_KEYS):
            raise BadInput(f"{path}: each [[signoffs]] needs {', '.join(_SIGNOFF_KEYS)}")
        values = tuple(str(entry[k]) for k in _SIGNOFF_KEYS)
        seen = tx.execute(
            "SELECT 1 FROM signoffs WHERE release_id = ? AND role = ? AND person = ? AND"
            " decision = ? AND comment = ? AND content_hash = ? AND signed_at = ?"
            " AND expires_at = ?",
            (release_id, *values),
        ).fetchone()
        if seen is None:
            tx.execute(
                "INSERT INTO signoffs (release_id, role, person, decision, comment, content_hash,"
                " signed_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (release_id, *values),
            )
            tx.audit(
                "import.signoff",
                target,
                agent=agent,
                details=dict(zip(_SIGNOFF_KEYS, values, strict=True)),
            )
            changes.append(f"sign-off {target} {entry['role']} by {entry['person']}")


def import_dir(gdb: GovernanceDB, directory: Path, *, actor: str) -> list[str]:
    """Load an exported directory; returns the changes made (empty when up to date)."""
    if not directory.is_dir():
        raise NotFound(f"no such directory {directory}")
    agent_files = sorted((directory / "agents").glob("*.toml"))
    release_files = sorted(
        (directory / "releases").glob("*/*.toml"),
        key=lambda p: (str(load_toml(p).get("created_at", "")), str(p)),
    )
    if not agent_files and not release_files:
        raise BadInput(f"{directory} has no agents/*.toml or releases/*/*.toml to import")
    changes: list[str] = []
    with gdb.transaction(actor) as tx:
        for path in agent_files:
            _import_agent(tx, path, changes)
        for path in release_files:
            _import_release(tx, path, changes)
        if not changes:
            tx.unchanged()
    return changes
