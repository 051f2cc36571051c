"""Shared builders for governance tests: a real DB file, a registered agent with its
five owners, and the fixture releases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agentops_console.governance.db import GovernanceDB, open_db
from agentops_console.governance.owners import set_owner
from agentops_console.governance.paths import PROJECT_ROOT
from agentops_console.governance.registry import add_agent
from agentops_console.governance.releases import (
    Decision,
    Release,
    SignOff,
    get_release,
    propose,
    sign,
)
from agentops_console.governance.rubric import Rubric, find_rubric
from agentops_console.governance.tomlfile import load_toml

REPO = PROJECT_ROOT
POLICY = REPO / "fixtures" / "policies" / "it-support.cedar"
RELEASES = REPO / "fixtures" / "releases"
RUNBOOKS = REPO / "runbooks"
OWNERS = {"product": "pat", "security": "sam", "platform": "pia", "applied-ai": "ali"}
OWNERS["operations"] = "ola"


def rubric() -> Rubric:
    return find_rubric(REPO / "rubrics", "deployment")


def new_db(tmp_path: Path) -> GovernanceDB:
    return open_db(tmp_path / "gov.db", create=True)


def register(
    gdb: GovernanceDB, name: str = "it-support", endpoint: str = "http://127.0.0.1:9"
) -> None:
    add_agent(
        gdb,
        actor="admin",
        name=name,
        endpoint=endpoint,
        token_env="IT_TOKEN",
        tenant="acme",
        workflows=["password-reset", "data-export"],
        risk="high",
    )
    for role, person in OWNERS.items():
        set_owner(gdb, actor="admin", agent=name, role=role, person=person)


def propose_fixture(gdb: GovernanceDB, fixture: str, version: str, author: str = "dev") -> Release:
    answers = load_toml(RELEASES / fixture)
    answers.pop("version", None)
    release, _ = propose(
        gdb,
        actor=author,
        agent="it-support",
        version=version,
        answers=answers,
        policy=POLICY.read_text(),
        author=author,
        rubric=rubric(),
    )
    return release


def sign_as(
    gdb: GovernanceDB,
    person: str,
    version: str = "1.3.2",
    decision: Decision = "approve",
    comment: str = "ok",
    **kw: Any,
) -> list[SignOff]:
    """One person's decision on an it-support release, as `agentops signoff` records it."""
    return sign(
        gdb,
        person=person,
        agent="it-support",
        version=version,
        decision=decision,
        comment=comment,
        rubric=rubric(),
        **kw,
    )


def sign_all(gdb: GovernanceDB, version: str) -> None:
    for person in OWNERS.values():
        sign_as(gdb, person, version)


def live_fixture(gdb: GovernanceDB, fixture: str, version: str) -> Release:
    """A fixture release proposed, signed by every owner and promoted through the gate."""
    from agentops_console.governance.lifecycle import promote

    propose_fixture(gdb, fixture, version)
    sign_all(gdb, version)
    promote(
        gdb, actor="rm", agent="it-support", version=version, rubric=rubric(), runbooks=RUNBOOKS
    )
    return get_release(gdb, "it-support", version)
