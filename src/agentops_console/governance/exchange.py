"""Governance as code: the registry, owners, releases, sign-offs and evaluation results as
TOML files (`agentops export DIR`) that a team reviews in git, and loading them back
(`agentops import DIR`), which changes nothing when the DB already matches.

Layout: agents/<agent>.toml (with its owners), releases/<agent>/<version>.toml (answers,
policy text and sign-offs) and evaluations/<agent>/<version>.toml (the release's stored
evaluation results, each with the content hash and suite/set hash it is bound to). An
import is one transaction.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from . import names
from .clock import iso, now_iso, parse_ts
from .db import GovernanceDB, Tx
from .errors import BadInput, Conflict, NotFound
from .gate import check
from .lifecycle import make_live
from .owners import Owner, write_owner
from .policy_facts import derive, facts_to_json
from .registry import Agent, list_agents, require_agent, write_agent
from .releases import (
    EVALUATION_FIELDS,
    STATUSES,
    content_hash,
    get_release,
    list_releases,
    signoffs,
    validate_answers,
    write_evaluation,
    write_release,
    write_signoff,
)
from .rubric import Rubric
from .tomlfile import load_toml

_AGENT_KEYS = ("endpoint", "token_env", "read_token_env", "tenant", "workflows", "risk")
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
        evaluations = gdb.query(
            f"SELECT {', '.join(EVALUATION_FIELDS)} FROM evaluations WHERE release_id = ?"
            " ORDER BY id",
            (release.id,),
        )
        if evaluations:
            path = directory / "evaluations" / release.agent / f"{release.version}.toml"
            _write(path, _evaluations_document(release.content_hash, evaluations))
            written.append(path)
    return written


def _evaluations_document(release_hash: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One release's results; `metrics` as indented JSON (TOML has no null, and a result
    has unmeasured metrics), so a diff in review shows which number moved."""
    entries = []
    for row in rows:
        entry = _clean({k: row[k] for k in EVALUATION_FIELDS if k not in ("agent", "version")})
        entry["metrics"] = json.dumps(json.loads(row["metrics"]), indent=2, sort_keys=True)
        entries.append(entry)
    first = rows[0]
    return {
        "agent": first["agent"],
        "version": first["version"],
        "release_content_hash": release_hash,
        "evaluations": entries,
    }


def _str(data: dict[str, Any], key: str, origin: Path) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise BadInput(f"{origin}: `{key}` must be a non-empty string")
    return value


def _opt_str(data: dict[str, Any], key: str, origin: Path) -> str | None:
    value = data.get(key)
    if value is None or isinstance(value, str):
        return value or None
    raise BadInput(f"{origin}: `{key}` must be a string")


def _stamp(data: dict[str, Any], key: str, origin: Path) -> str | None:
    """A timestamp from a file, normalised to the DB's form; a TOML datetime is fine too."""

    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, datetime):
        return iso(value)
    if not isinstance(value, str):
        raise BadInput(f"{origin}: `{key}` must be an ISO 8601 time")
    try:
        return iso(parse_ts(value))
    except BadInput:
        raise BadInput(f"{origin}: `{key}` is not an ISO 8601 time") from None


def _import_agent(tx: Tx, path: Path, changes: list[str]) -> None:

    data = load_toml(path)
    name = names.agent_name(_str(data, "name", path))
    token_env = _opt_str(data, "token_env", path)
    read_token_env = _opt_str(data, "read_token_env", path)
    workflows = data.get("workflows", [])
    if not isinstance(workflows, list):
        raise BadInput(f"{path}: `workflows` must be a list of names")
    agent = Agent(
        name=name,
        endpoint=names.endpoint(_str(data, "endpoint", path)),
        token_env=names.env_var(token_env) if token_env else None,
        read_token_env=names.env_var(read_token_env) if read_token_env else None,
        tenant=names.tenant(data.get("tenant")),
        workflows=tuple(names.workflow(w) for w in workflows),
        risk=names.risk(data.get("risk", "medium")),
        created_by=tx.actor,
    )
    wanted = {k: agent.as_dict()[k] for k in _AGENT_KEYS}
    wanted["workflows"] = json.dumps(wanted["workflows"])  # as stored
    row = tx.execute(
        f"SELECT {', '.join(_AGENT_KEYS)} FROM agents WHERE name = ?", (name,)
    ).fetchone()
    if row is None:
        write_agent(tx, replace(agent, created_at=_stamp(data, "created_at", path) or now_iso()))
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
        who = names.person(person)
        have = tx.execute(
            "SELECT person FROM owners WHERE agent = ? AND role = ?", (name, role)
        ).fetchone()
        if have is None or have[0] != who:
            write_owner(tx, Owner(name, role, who, now_iso(), tx.actor))
            tx.audit("import.owner.set", f"{name}/{role}", agent=name, details={"person": who})
            changes.append(f"owner {name}/{role} = {who}")


def _signoff_values(entry: Any, path: Path, valid_days: int) -> tuple[str, ...]:
    """A sign-off from a file: typed, and with a lifetime the rubric allows (a file must
    not be a way to sign for ever)."""

    if not isinstance(entry, dict) or any(k not in entry for k in _SIGNOFF_KEYS):
        raise BadInput(f"{path}: each [[signoffs]] needs {', '.join(_SIGNOFF_KEYS)}")
    if entry["decision"] not in ("approve", "reject"):
        raise BadInput(f"{path}: a sign-off decision is approve or reject")
    if entry["role"] not in names.ROLES:
        raise BadInput(f"{path}: unknown role {names.shown(entry['role'])} in a sign-off")
    values = {k: entry[k] for k in _SIGNOFF_KEYS}
    values["person"] = names.person(entry["person"])
    for key in ("comment", "content_hash"):
        if not isinstance(entry[key], str):
            raise BadInput(f"{path}: sign-off `{key}` must be a string")
    for key in ("signed_at", "expires_at"):
        values[key] = _stamp(entry, key, path)
    signed, expires = parse_ts(values["signed_at"]), parse_ts(values["expires_at"])
    if not signed < expires <= signed + timedelta(days=valid_days, seconds=1):
        raise BadInput(
            f"{path}: a sign-off by {values['person']} expires {values['expires_at']}, not"
            f" within the rubric's {valid_days} days after it was signed"
        )
    return tuple(values[k] for k in _SIGNOFF_KEYS)


class _ReleaseFile:
    """One releases/<agent>/<version>.toml, every field type-checked before any write."""

    def __init__(self, path: Path, rubric_for: Callable[[str], Rubric]) -> None:

        data = load_toml(path)
        self.path = path
        self.agent = names.agent_name(_str(data, "agent", path))
        self.version = names.version(_str(data, "version", path))
        self.policy = _str(data, "policy", path)
        answers = data.get("answers")
        if not isinstance(answers, dict):
            raise BadInput(f"{path}: [answers] is missing")
        self.answers: dict[str, Any] = answers
        self.digest = content_hash(self.agent, self.version, answers, self.policy)
        if data.get("content_hash") != self.digest:
            raise BadInput(
                f"{path}: content_hash does not match the answers and policy in the file"
            )
        revision = data.get("revision", 1)
        if isinstance(revision, bool) or not isinstance(revision, int) or not 0 < revision < 2**31:
            raise BadInput(f"{path}: `revision` must be a whole number from 1")
        self.revision = revision
        self.author = names.person(_str(data, "author", path))
        authors = data.get("authors", [self.author])
        if not isinstance(authors, list):
            raise BadInput(f"{path}: `authors` must be a list of people")
        self.authors = list(dict.fromkeys([*map(names.person, authors), self.author]))
        self.rubric = _opt_str(data, "rubric", path) or "deployment"
        rubric = rubric_for(self.rubric)
        validate_answers(rubric, answers, str(path), self.agent, self.version)
        status = data.get("status", "proposed")
        if status not in STATUSES:
            raise BadInput(f"{path}: invalid status {names.shown(status)}")
        self.status: str = status
        self.created_at = _stamp(data, "created_at", path) or now_iso()
        self.updated_at = _stamp(data, "updated_at", path) or self.created_at
        self.gate_passed_at = _stamp(data, "gate_passed_at", path)
        self.promoted_at = _stamp(data, "promoted_at", path)
        entries = data.get("signoffs", [])
        if not isinstance(entries, list):
            raise BadInput(f"{path}: `signoffs` must be an array of tables")
        self.signoffs = [_signoff_values(e, path, rubric.signoff_valid_days) for e in entries]


def _import_release(
    tx: Tx,
    gdb: GovernanceDB,
    f: _ReleaseFile,
    result: ImportResult,
    runbooks: Path,
    rubric_for: Callable[[str], Rubric],
) -> None:

    path, changes = f.path, result.changes
    tools = f.answers.get("tools", {})
    facts = facts_to_json(derive(f.policy, tools if isinstance(tools, dict) else {}, str(path)))
    require_agent(tx, f.agent)  # `_naming` puts the file in front of the message
    row = tx.execute(
        "SELECT id, content_hash FROM releases WHERE agent = ? AND version = ?",
        (f.agent, f.version),
    ).fetchone()
    target = f"{f.agent}@{f.version}"
    added = row is None
    if row is None:
        # in as proposed; the standing the file claims is earned below, through the gate
        release_id = write_release(
            tx,
            agent=f.agent,
            version=f.version,
            revision=f.revision,
            author=f.author,
            authors=f.authors,
            rubric=f.rubric,
            answers=f.answers,
            policy=f.policy,
            content_hash=f.digest,
            created_at=f.created_at,
            updated_at=f.updated_at,
            facts=facts,
        )
    else:
        release_id, existing = row
        if existing != f.digest:
            raise Conflict(
                f"{path}: {target} differs from the release in the DB; propose a new version"
            )
    for values in f.signoffs:
        seen = tx.execute(
            "SELECT 1 FROM signoffs WHERE release_id = ? AND role = ? AND person = ? AND"
            " decision = ? AND comment = ? AND content_hash = ? AND signed_at = ?"
            " AND expires_at = ?",
            (release_id, *values),
        ).fetchone()
        if seen is None:
            write_signoff(tx, release_id, dict(zip(_SIGNOFF_KEYS, values, strict=True)))
            tx.audit(
                "import.signoff",
                target,
                agent=f.agent,
                details=dict(zip(_SIGNOFF_KEYS, values, strict=True)),
            )
            changes.append(f"sign-off {target} {values[0]} by {values[1]}")
    if not added:
        return
    status, gate_passed_at, reasons = _earned_status(gdb, f, rubric_for, runbooks)
    tx.execute(
        "UPDATE releases SET status = ?, gate_passed_at = ?, promoted_at = ? WHERE id = ?",
        (
            "proposed" if status == "live" else status,  # make_live switches it below
            gate_passed_at,
            None if status == "proposed" else f.promoted_at,
            release_id,
        ),
    )
    if status == "live":
        replaced = make_live(
            tx,
            get_release(gdb, f.agent, f.version),
            previous_status="retired",
            action="import.release.live",
            at=f.promoted_at,
        )
        if replaced is not None:
            changes.append(f"release {f.agent}@{replaced} retired: {f.version} is live now")
    details: dict[str, Any] = {"content_hash": f.digest, "status": status, "file_status": f.status}
    if reasons:
        details["gate"] = reasons
    tx.audit("import.release", target, agent=f.agent, details=details)
    if not reasons:
        changes.append(f"release {target} added ({status})")
    else:
        held = (
            "as proposed, not live"
            if f.status == "live"
            else f"as {status} without its gate pass (so no rollback target)"
        )
        result.held_back.append(target)
        changes.append(
            f"release {target} added {held}: the gate fails on the imported sign-offs"
            f" ({'; '.join(reasons)})"
        )


def _earned_status(
    gdb: GovernanceDB, f: _ReleaseFile, rubric_for: Callable[[str], Rubric], runbooks: Path
) -> tuple[str, str | None, list[str]]:
    """The status and gate time a release file may keep: (status, gate_passed_at, why not).

    Standing that gives power must be earned: `live`, and a `gate_passed_at` (which makes
    a rollback target), hold only if the gate passes on the imported sign-offs as of that
    time. The owners of that time are not in the export, so a sign-off counts for its role
    whoever made it (authors excepted). A live release that fails comes in as proposed; a
    retired or rolled-back one keeps its status (it can be neither promoted nor rolled
    back to) but not its gate time.
    """

    if f.gate_passed_at is None:
        if f.status == "live":
            return "proposed", None, ["the file gives no gate_passed_at"]
        return f.status, None, []
    release = get_release(gdb, f.agent, f.version)
    result = check(
        gdb,
        release,
        rubric_for(f.rubric),
        runbooks,
        now=parse_ts(f.gate_passed_at),
        owners_then_unknown=True,
    )
    if result.ready:
        return f.status, f.gate_passed_at, []
    return ("proposed" if f.status == "live" else f.status), None, list(result.reasons)


_EVALUATION_KINDS = ("suite", "replay", "canary")
_SHA256 = re.compile(r"[0-9a-f]{64}\Z")
#: What makes two evaluation rows the same result; the other fields must then agree too.
_EVALUATION_KEY = ("kind", "content_hash", "suite_path", "suite_sha256", "recorded_at")


def _sha256(data: dict[str, Any], key: str, origin: Path) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not _SHA256.match(value):
        raise BadInput(f"{origin}: `{key}` must be a sha256 (64 lowercase hex digits)")
    return value


def _count(data: dict[str, Any], key: str, origin: Path) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
        raise BadInput(f"{origin}: `{key}` must be a whole number from 0")
    return value


def _evaluation_values(entry: Any, path: Path) -> dict[str, Any]:
    """One [[evaluations]] entry, typed; its `content_hash` is kept as written, so a
    result that was stale when exported is stale again after the import."""
    if not isinstance(entry, dict):
        raise BadInput(f"{path}: `evaluations` must be an array of tables")
    unknown = sorted(set(entry) - (set(EVALUATION_FIELDS) - {"agent", "version"}))
    if unknown:
        raise BadInput(f"{path}: unknown evaluation field {names.shown(unknown[0])}")
    kind = entry.get("kind")
    if kind not in _EVALUATION_KINDS:
        raise BadInput(
            f"{path}: evaluation kind {names.shown(kind)} is not one of"
            f" {', '.join(_EVALUATION_KINDS)}"
        )
    values: dict[str, Any] = {
        "kind": kind,
        "content_hash": _sha256(entry, "content_hash", path),
        "suite_sha256": _sha256(entry, "suite_sha256", path),
        "suite_name": _str(entry, "suite_name", path),
        "suite_path": _str(entry, "suite_path", path),
        "target": _opt_str(entry, "target", path),
        "cases": _count(entry, "cases", path),
        "passed": _count(entry, "passed", path),
        "recorded_by": names.person(_str(entry, "recorded_by", path)),
    }
    if values["passed"] > values["cases"]:
        raise BadInput(f"{path}: an evaluation has more cases passed than cases")
    for key in ("started_at", "finished_at", "recorded_at"):
        values[key] = _stamp(entry, key, path)
    if values["recorded_at"] is None:
        raise BadInput(f"{path}: an evaluation needs `recorded_at`")
    try:
        metrics = json.loads(_str(entry, "metrics", path))
    except ValueError:
        raise BadInput(f"{path}: evaluation `metrics` is not JSON") from None
    if not isinstance(metrics, dict):
        raise BadInput(f"{path}: evaluation `metrics` must be a JSON object")
    values["metrics"] = json.dumps(metrics, sort_keys=True)  # as stored
    return values


class _EvaluationsFile:
    """One evaluations/<agent>/<version>.toml, every entry type-checked before any write."""

    def __init__(self, path: Path) -> None:
        data = load_toml(path)
        self.path = path
        self.agent = names.agent_name(_str(data, "agent", path))
        self.version = names.version(_str(data, "version", path))
        self.release_hash = _sha256(data, "release_content_hash", path)
        entries = data.get("evaluations", [])
        if not isinstance(entries, list):
            raise BadInput(f"{path}: `evaluations` must be an array of tables")
        self.entries = [_evaluation_values(e, path) for e in entries]
        # the newest stays the newest: the gate reads the latest row of a release
        self.entries.sort(key=lambda v: str(v["recorded_at"]))


def _import_evaluations(tx: Tx, f: _EvaluationsFile, changes: list[str]) -> None:
    target = f"{f.agent}@{f.version}"
    row = tx.execute(
        "SELECT id, content_hash FROM releases WHERE agent = ? AND version = ?",
        (f.agent, f.version),
    ).fetchone()
    if row is None:
        raise NotFound(
            f"{f.path}: no release {target} in the DB or the import; evaluations come"
            " in only with their release"
        )
    release_id, release_hash = row
    if release_hash != f.release_hash:
        raise Conflict(
            f"{f.path}: exported for {target} with content hash {f.release_hash[:12]}, but"
            f" the release has {release_hash[:12]}"
        )
    columns = [k for k in EVALUATION_FIELDS if k not in ("agent", "version")]
    for entry in f.entries:
        values = {**entry, "agent": f.agent, "version": f.version}
        key = " AND ".join(f"{k} = ?" for k in _EVALUATION_KEY)
        have = tx.execute(
            f"SELECT {', '.join(columns)} FROM evaluations WHERE release_id = ? AND {key}",
            (release_id, *(values[k] for k in _EVALUATION_KEY)),
        ).fetchone()
        if have is not None:
            if dict(zip(columns, have, strict=True)) != {k: values[k] for k in columns}:
                raise Conflict(
                    f"{f.path}: the {values['kind']} result of {values['recorded_at']} differs"
                    " from the one in the DB"
                )
            continue
        row_id = write_evaluation(tx, release_id, values)
        stale = values["content_hash"] != release_hash
        tx.audit(
            "import.evaluation",
            target,
            agent=f.agent,
            details={
                "evaluation": row_id,
                **{k: values[k] for k in (*_EVALUATION_KEY, "cases", "passed")},
                "file": str(f.path),
            },
        )
        changes.append(
            f"evaluation {target} {values['kind']} {values['suite_name']} of"
            f" {values['recorded_at']} added" + (" (stale: for other content)" if stale else "")
        )


@contextmanager
def _naming(path: Path) -> Iterator[None]:
    """Every error about a file names the file, whichever check raised it."""
    try:
        yield
    except (BadInput, NotFound) as exc:
        if str(path) in str(exc):
            raise
        raise type(exc)(f"{path}: {exc}") from None


@dataclass(frozen=True, slots=True)
class ImportResult:
    #: what the import changed, one line each (empty when the DB was up to date)
    changes: list[str]
    #: releases (agent@version) that did not keep the standing their file claims
    held_back: list[str]


def import_dir(
    gdb: GovernanceDB,
    directory: Path,
    *,
    actor: str,
    rubric_for: Callable[[str], Rubric],
    runbooks: Path,
) -> ImportResult:
    """Load an exported directory, all of it in one transaction."""
    if not directory.is_dir():
        raise NotFound(f"no such directory {directory}")
    agent_files = sorted((directory / "agents").glob("*.toml"))
    release_paths = sorted((directory / "releases").glob("*/*.toml"))
    evaluation_paths = sorted((directory / "evaluations").glob("*/*.toml"))
    if not agent_files and not release_paths and not evaluation_paths:
        raise BadInput(f"{directory} has no agents/*.toml or releases/*/*.toml to import")
    releases: list[_ReleaseFile] = []
    for path in release_paths:  # every release file read and checked before any write
        with _naming(path):
            releases.append(_ReleaseFile(path, rubric_for))
    evaluations: list[_EvaluationsFile] = []
    for path in evaluation_paths:
        with _naming(path):
            evaluations.append(_EvaluationsFile(path))
    releases.sort(key=lambda f: (f.created_at, str(f.path)))  # earlier releases first
    result = ImportResult([], [])
    with gdb.transaction(actor) as tx:
        for path in agent_files:
            with _naming(path):
                _import_agent(tx, path, result.changes)
        for release in releases:
            with _naming(release.path):
                _import_release(tx, gdb, release, result, runbooks, rubric_for)
        for evaluation in evaluations:
            with _naming(evaluation.path):
                _import_evaluations(tx, evaluation, result.changes)
        if not result.changes:
            tx.unchanged()
    return result
