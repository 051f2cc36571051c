"""A rollback plan lists each step once (issue 13, item 11): the runbook's steps that run
the rollback itself are circular and go; where the runbook, the release's answer and the
plan say the same thing (redeploy, check the console, re-enable), the most specific
wording stays, once."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agentops_console.governance.db import GovernanceDB
from agentops_console.governance.incidents import open_incident
from agentops_console.governance.rollback import Plan, plan

from .gov_fixtures import RUNBOOKS, live_fixture, new_db, register


@pytest.fixture
def gdb(tmp_path: Path) -> GovernanceDB:
    db = new_db(tmp_path)
    register(db)
    live_fixture(db, "it-support-1.3.2.toml", "1.3.2")
    live_fixture(db, "it-support-1.4.0.toml", "1.4.0")
    return db


def manual(the_plan: Plan) -> list[str]:
    return [s.text for s in the_plan.steps if s.kind == "manual"]


def count(steps: list[str], pattern: str) -> int:
    return sum(1 for s in steps if re.search(pattern, s, re.I))


def test_each_step_once_and_none_circular(gdb: GovernanceDB) -> None:
    open_incident(gdb, actor="ops", agent="it-support", summary="drift after 1.4.0")
    steps = manual(plan(gdb, agent="it-support", to="1.3.2", runbooks=RUNBOOKS))
    assert len(steps) == len(set(steps))
    assert count(steps, r"agentops rollback") == 0  # the plan does not tell you to print it
    assert count(steps, r"re-?enable|agentops enable") == 1
    assert count(steps, r"console.*policy version") == 1
    assert count(steps, r"redeploy") == 1
    # an incident is open and the plan notes the rollback on it: no second one to open
    assert count(steps, r"agentops incident open") == 0
    # the most specific wording: the release's own steps, the plan's exact commands
    assert "release answer: Redeploy the it-support service at tag v1.3.2" in "\n".join(steps)
    reenable = next(s for s in steps if "enable" in s)
    assert "agentops enable it-support password-reset" in reenable
    assert "agentops enable it-support data-export" in reenable
    # steps said once keep their place: timing first, the resolve step last
    assert steps[0].startswith("runbook bad-release: Confirm the timing")
    assert steps[-1].startswith("runbook bad-release: Resolve the incident")


def test_without_an_open_incident_the_runbook_says_to_open_one(gdb: GovernanceDB) -> None:
    the_plan = plan(gdb, agent="it-support", to="1.3.2", runbooks=RUNBOOKS)
    assert [s.kind for s in the_plan.steps].count("note_incident") == 0
    assert count(manual(the_plan), r"agentops incident open it-support") == 1
