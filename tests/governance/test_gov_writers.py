"""One writer per governance table and one "unknown agent" check (issue 13, item 17): the
registry, owners, releases and sign-offs are written through `Tx.insert` by the domain
modules and an import alike, so the two can no longer drift apart."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from agentops_console.governance import exchange, incidents, owners, registry, releases
from agentops_console.governance.db import GovernanceDB
from agentops_console.governance.errors import NotFound
from agentops_console.governance.paths import PROJECT_ROOT

from .gov_fixtures import RUNBOOKS, new_db, propose_fixture, register, rubric, sign_all

SOURCE = PROJECT_ROOT / "src" / "agentops_console"


def _sources() -> dict[Path, str]:
    return {p: p.read_text("utf-8") for p in SOURCE.rglob("*.py")}


def test_only_tx_insert_writes_agents_owners_releases_and_signoffs() -> None:
    statement = re.compile(
        r"INSERT\s+(?:OR\s+\w+\s+)?INTO\s+(?:agents|owners|releases|signoffs)\b", re.I
    )
    offenders = [str(p) for p, text in _sources().items() if statement.search(text)]
    assert offenders == []


def test_unknown_agent_is_raised_in_one_place() -> None:
    raised = [
        f"{p.name}:{text[: m.start()].count(chr(10)) + 1}"
        for p, text in _sources().items()
        for m in re.finditer(r"raise NotFound\(f[\"'][^\"']*unknown agent", text)
    ]
    assert raised == [f"registry.py:{_line_of(registry.require_agent)}"]


def _line_of(function: Callable[..., object]) -> int:
    import inspect

    lines, start = inspect.getsourcelines(function)
    return start + next(i for i, line in enumerate(lines) if "raise NotFound" in line)


@pytest.fixture
def gdb(tmp_path: Path) -> GovernanceDB:
    db = new_db(tmp_path)
    register(db)
    return db


CALLS: dict[str, Callable[[GovernanceDB], object]] = {
    "owner set": lambda g: owners.set_owner(
        g, actor="a", agent="ghost", role="product", person="p"
    ),
    "release show": lambda g: releases.get_release(g, "ghost", "1.0.0"),
    "incident open": lambda g: incidents.open_incident(
        g, actor="a", agent="ghost", summary="s", severity="low"
    ),
    "agent remove": lambda g: registry.remove_agent(g, actor="a", name="ghost"),
    "agent show": lambda g: registry.get_agent(g, "ghost"),
}


@pytest.mark.parametrize("call", CALLS.values(), ids=list(CALLS))
def test_every_entry_point_says_unknown_agent_alike(
    gdb: GovernanceDB, call: Callable[[GovernanceDB], object]
) -> None:
    with pytest.raises(NotFound, match=r"^unknown agent 'ghost'$"):
        call(gdb)


def test_insert_takes_only_plain_identifiers(gdb: GovernanceDB) -> None:
    with gdb.transaction("a") as tx:
        for table, row in (
            ("agents; DROP TABLE audit", {"name": "x"}),
            ("agents", {"name) VALUES ('x'); --": "y"}),
            ("agents", {}),
        ):
            with pytest.raises(ValueError, match="not an insertable"):
                tx.insert(table, row)
        tx.unchanged()
    assert gdb.query_one("SELECT COUNT(*) AS n FROM sqlite_master WHERE name = 'audit'") == {"n": 1}


def test_insert_is_part_of_the_callers_transaction(gdb: GovernanceDB) -> None:
    row = {"agent": "it-support", "role": "product", "person": "zoe", "set_at": "t"}
    with pytest.raises(RuntimeError, match="audit row"), gdb.transaction("a") as tx:
        tx.insert("owners", {**row, "set_by": "a"}, replace=True)  # no audit row: refused
    assert owners.owner_of(gdb, "it-support", "product") == "pat"
    with pytest.raises(sqlite3.IntegrityError), gdb.transaction("a") as tx:
        tx.insert("agents", {"name": "it-support", "endpoint": "http://x"})


def test_export_import_round_trip_writes_the_same_rows(gdb: GovernanceDB, tmp_path: Path) -> None:
    """The import's rows equal the commands' rows, column for column (ids, and the times
    an export does not carry: when the agent was added, when each owner was set)."""
    propose_fixture(gdb, "it-support-1.3.2.toml", "1.3.2")
    sign_all(gdb, "1.3.2")
    exchange.export_dir(gdb, tmp_path / "out")
    (tmp_path / "other").mkdir()
    other = new_db(tmp_path / "other")
    exchange.import_dir(
        other, tmp_path / "out", actor="admin", rubric_for=lambda _: rubric(), runbooks=RUNBOOKS
    )

    def rows(g: GovernanceDB, sql: str) -> list[dict[str, object]]:
        return g.query(sql)

    for sql in (
        "SELECT name, endpoint, token_env, read_token_env, tenant, workflows, risk FROM agents",
        "SELECT agent, role, person FROM owners ORDER BY role",
        "SELECT agent, version, revision, author, rubric, answers, policy, policy_sha256,"
        " content_hash, status, created_at, updated_at, facts, authors FROM releases",
        "SELECT role, person, decision, comment, content_hash, signed_at, expires_at"
        " FROM signoffs ORDER BY id",
    ):
        assert rows(other, sql) == rows(gdb, sql), sql
