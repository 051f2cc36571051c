"""Releases, sign-offs and the gate: hashes bind sign-offs, owners sign their role only,
authors never sign, sign-offs expire, and answers must agree with the Cedar policy."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from agentops_console.governance.clock import utcnow
from agentops_console.governance.db import GovernanceDB
from agentops_console.governance.errors import BadInput, Conflict, NotFound, NotReady
from agentops_console.governance.gate import check, record_pass
from agentops_console.governance.lifecycle import promote
from agentops_console.governance.owners import set_owner
from agentops_console.governance.policy_facts import derive
from agentops_console.governance.releases import get_release, propose, role_states
from agentops_console.governance.rubric import load_rubric
from agentops_console.governance.runbooks import list_runbooks, parse_runbook, runbooks_for
from agentops_console.governance.tomlfile import load_toml

from .gov_fixtures import (
    OWNERS,
    POLICY,
    RELEASES,
    RUNBOOKS,
    new_db,
    propose_fixture,
    register,
    rubric,
    sign_all,
    sign_as,
)


@pytest.fixture
def gdb(tmp_path: Path) -> Iterator[GovernanceDB]:
    db = new_db(tmp_path)
    register(db)
    yield db
    db.close()


def test_first_release_passes_the_gate_once_every_role_signed(gdb: GovernanceDB) -> None:
    release = propose_fixture(gdb, "it-support-1.3.2.toml", "1.3.2")
    result = check(gdb, release, rubric(), RUNBOOKS)
    assert not result.ready
    assert sorted(r.split(":")[0] for r in result.reasons) == sorted(OWNERS)
    sign_all(gdb, "1.3.2")
    result = check(gdb, get_release(gdb, "it-support", "1.3.2"), rubric(), RUNBOOKS)
    assert result.ready, result.reasons


def test_changed_answers_make_signoffs_stale(gdb: GovernanceDB) -> None:
    propose_fixture(gdb, "it-support-1.3.2.toml", "1.3.2")
    sign_all(gdb, "1.3.2")
    answers = load_toml(RELEASES / "it-support-1.3.2.toml")
    answers["q2"]["access_logging"] = "nothing, trust us"
    release, outcome = propose(
        gdb,
        actor="dev",
        agent="it-support",
        version="1.3.2",
        answers=answers,
        policy=POLICY.read_text(),
        author="dev",
        rubric=rubric(),
    )
    assert outcome == "revised" and release.revision == 2
    states = {s.role: s.status for s in role_states(gdb, release, rubric())}
    assert set(states.values()) == {"stale"}
    assert any("stale" in r for r in check(gdb, release, rubric(), RUNBOOKS).reasons)


def test_same_proposal_twice_is_unchanged(gdb: GovernanceDB) -> None:
    propose_fixture(gdb, "it-support-1.3.2.toml", "1.3.2")
    rows = gdb.conn.execute("SELECT COUNT(*) FROM audit").fetchone()[0]
    propose_fixture(gdb, "it-support-1.3.2.toml", "1.3.2")
    assert gdb.conn.execute("SELECT COUNT(*) FROM audit").fetchone()[0] == rows


def test_author_never_signs_own_release(gdb: GovernanceDB) -> None:
    set_owner(gdb, actor="admin", agent="it-support", role="security", person="dev")
    propose_fixture(gdb, "it-support-1.3.2.toml", "1.3.2", author="dev")
    with pytest.raises(Conflict, match="separation of duties"):
        sign_as(gdb, "dev", "1.3.2", comment="")


def test_an_earlier_author_cannot_sign_after_someone_else_re_proposes(gdb: GovernanceDB) -> None:
    """Re-proposing the same content under another name must not launder the author."""
    set_owner(gdb, actor="admin", agent="it-support", role="security", person="dev")
    propose_fixture(gdb, "it-support-1.3.2.toml", "1.3.2", author="dev")
    release = propose_fixture(gdb, "it-support-1.3.2.toml", "1.3.2", author="friend")
    assert release.author == "friend" and release.everyone_who_wrote_it == ("dev", "friend")
    for person in ("dev", "friend"):
        with pytest.raises(Conflict, match="separation of duties"):
            sign_as(gdb, person, "1.3.2", comment="")


def test_only_the_registered_owner_signs_a_role(gdb: GovernanceDB) -> None:
    propose_fixture(gdb, "it-support-1.3.2.toml", "1.3.2")
    with pytest.raises(Conflict, match="not the registered security owner"):
        sign_as(gdb, "pat", "1.3.2", comment="", roles=["security"])
    with pytest.raises(NotFound, match="unknown role"):
        sign_as(gdb, "pat", "1.3.2", comment="", roles=["janitor"])
    with pytest.raises(NotFound, match="unknown version"):
        sign_as(gdb, "pat", "9.9.9", comment="")


def test_rejection_needs_a_comment_and_blocks_the_gate(gdb: GovernanceDB) -> None:
    propose_fixture(gdb, "it-support-1.3.2.toml", "1.3.2")
    sign_all(gdb, "1.3.2")
    with pytest.raises(BadInput, match="comment"):
        sign_as(gdb, "sam", "1.3.2", decision="reject", comment=" ")
    sign_as(gdb, "sam", "1.3.2", decision="reject", comment="export scope too wide")
    reasons = check(gdb, get_release(gdb, "it-support", "1.3.2"), rubric(), RUNBOOKS).reasons
    assert reasons == ("security: rejected by sam: export scope too wide",)


def test_signoffs_expire(gdb: GovernanceDB) -> None:
    propose_fixture(gdb, "it-support-1.3.2.toml", "1.3.2")
    long_ago = utcnow() - timedelta(days=rubric().signoff_valid_days + 1)
    for person in OWNERS.values():
        sign_as(gdb, person, "1.3.2", comment="", now=long_ago)
    reasons = check(gdb, get_release(gdb, "it-support", "1.3.2"), rubric(), RUNBOOKS).reasons
    assert len(reasons) == 5 and all("expired" in r for r in reasons)


def test_bad_release_lists_every_disagreement(gdb: GovernanceDB) -> None:
    release = propose_fixture(gdb, "it-support-bad.toml", "1.5.0-bad")
    reasons = check(gdb, release, rubric(), RUNBOOKS).reasons
    text = "\n".join(reasons)
    assert "q1: reset_password is listed without approval but the policy needs approval" in text
    assert "q3: max_cost_usd_session is 5.0 in the answer but 2.0 in the policy" in text
    assert "q3: max_consecutive_tool_calls is 10" in text
    assert "q3: max_retries is 5 in the answer but 3" in text
    assert "q4: runbook 'pray' does not exist" in text
    assert "q4: rollback_to 0.9.0 is not an earlier release" in text


def test_rollback_target_must_have_passed_the_gate(gdb: GovernanceDB) -> None:
    propose_fixture(gdb, "it-support-1.3.2.toml", "1.3.2")
    release = propose_fixture(gdb, "it-support-1.4.0.toml", "1.4.0")
    sign_all(gdb, "1.4.0")
    reasons = check(gdb, release, rubric(), RUNBOOKS).reasons
    assert reasons == ("q4: rollback_to 1.3.2 never passed the release gate",)
    sign_all(gdb, "1.3.2")
    first = check(gdb, get_release(gdb, "it-support", "1.3.2"), rubric(), RUNBOOKS)
    assert record_pass(gdb, "ci", first)
    assert check(gdb, get_release(gdb, "it-support", "1.4.0"), rubric(), RUNBOOKS).ready


def test_promote_only_when_ready_and_one_live_per_agent(gdb: GovernanceDB) -> None:
    propose_fixture(gdb, "it-support-1.3.2.toml", "1.3.2")
    with pytest.raises(NotReady, match="not signed"):
        promote(
            gdb, actor="rm", agent="it-support", version="1.3.2", rubric=rubric(), runbooks=RUNBOOKS
        )
    sign_all(gdb, "1.3.2")
    promote(
        gdb, actor="rm", agent="it-support", version="1.3.2", rubric=rubric(), runbooks=RUNBOOKS
    )
    propose_fixture(gdb, "it-support-1.4.0.toml", "1.4.0")
    sign_all(gdb, "1.4.0")
    promote(
        gdb, actor="rm", agent="it-support", version="1.4.0", rubric=rubric(), runbooks=RUNBOOKS
    )
    statuses = dict(gdb.conn.execute("SELECT version, status FROM releases").fetchall())
    assert statuses == {"1.3.2": "retired", "1.4.0": "live"}
    with pytest.raises(Conflict, match=r"only a proposed release is promoted \(to go back"):
        promote(  # going back is a rollback, not a promotion
            gdb, actor="rm", agent="it-support", version="1.3.2", rubric=rubric(), runbooks=RUNBOOKS
        )


def test_a_withdrawn_release_stays_withdrawn(gdb: GovernanceDB) -> None:
    from agentops_console.governance.lifecycle import retire

    propose_fixture(gdb, "it-support-1.3.2.toml", "1.3.2")
    sign_all(gdb, "1.3.2")
    assert retire(gdb, actor="rm", agent="it-support", version="1.3.2", reason="withdrawn") == (
        "proposed"
    )
    with pytest.raises(Conflict, match="is retired"):
        promote(
            gdb, actor="rm", agent="it-support", version="1.3.2", rubric=rubric(), runbooks=RUNBOOKS
        )


def test_the_gate_uses_the_rubric_the_release_was_proposed_under(
    gdb: GovernanceDB, tmp_path: Path
) -> None:
    from dataclasses import replace

    from agentops_console.governance.rubric import find_rubric

    release = propose_fixture(gdb, "it-support-1.3.2.toml", "1.3.2")
    sign_all(gdb, "1.3.2")
    weaker = replace(rubric(), name="weak")
    result = check(gdb, release, weaker, RUNBOOKS)
    assert (
        not result.ready and "proposed under rubric 'deployment', not 'weak'" in result.reasons[0]
    )
    for name in ("../../tmp/weak", "a/b", ".hidden", ""):
        with pytest.raises(BadInput, match="invalid rubric name"):
            find_rubric(tmp_path, name)


def test_invalid_answers_are_rejected_with_every_problem(gdb: GovernanceDB) -> None:
    answers = load_toml(RELEASES / "it-support-1.3.2.toml")
    del answers["q3"]["max_retries"]
    answers["q1"]["tools_without_approval"] = "kb_search"
    answers["q3"]["max_cost_usd_session"] = float("nan")  # compares false: would pass the gate
    answers["q3"]["max_cost_usd_loop"] = float("inf")
    answers["q3"]["max_tool_calls"] = -1
    answers["tools"]["reset_password"]["read_only"] = "false"  # a true-ish string
    answers["tools"]["kb_search"]["example_arguments"] = "query"
    with pytest.raises(BadInput) as info:
        propose(
            gdb,
            actor="dev",
            agent="it-support",
            version="1.3.2",
            answers=answers,
            policy=POLICY.read_text(),
            author="dev",
            rubric=rubric(),
            answers_origin="a.toml",
        )
    assert "[q3] missing field max_retries" in str(info.value)
    message = str(info.value)
    assert "[q1] tools_without_approval must be a list of strings" in message
    assert "[q3] max_cost_usd_session must be a finite number >= 0" in message
    assert "[q3] max_cost_usd_loop must be a finite number >= 0" in message
    assert "[q3] max_tool_calls must be a whole number >= 0" in message
    assert "[tools.reset_password] read_only must be true or false" in message
    assert "[tools.kb_search] example_arguments must be a table" in message


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_policy_budget_annotations_must_be_finite(gdb: GovernanceDB, value: str) -> None:
    policy = POLICY.read_text().replace(
        '@max_cost_usd_session("2.00")', f'@max_cost_usd_session("{value}")'
    )
    assert policy != POLICY.read_text()
    with pytest.raises(BadInput, match="must be a finite number >= 0"):
        propose(
            gdb,
            actor="dev",
            agent="it-support",
            version="1.3.2",
            answers=load_toml(RELEASES / "it-support-1.3.2.toml"),
            policy=policy,
            author="dev",
            rubric=rubric(),
        )


def test_invalid_cedar_is_rejected(gdb: GovernanceDB) -> None:
    with pytest.raises(BadInput, match=r"p\.cedar: invalid Cedar policy"):
        propose(
            gdb,
            actor="dev",
            agent="it-support",
            version="1.3.2",
            answers=load_toml(RELEASES / "it-support-1.3.2.toml"),
            policy="permit (",
            author="dev",
            rubric=rubric(),
            policy_origin="p.cedar",
        )


def test_invalid_toml_error_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "deployment.toml"
    bad.write_text('name = "deployment"\n\n[[questions]\nid = "q1"\n')
    with pytest.raises(BadInput, match=rf"{bad}:3: invalid TOML"):
        load_rubric(bad)


def test_policy_facts_from_the_reference_policy() -> None:
    catalog = load_toml(RELEASES / "it-support-1.4.0.toml")["tools"]
    facts = derive(POLICY.read_text(), catalog)
    assert facts.budgets["max_cost_usd_session"] == 2.0
    assert facts.budgets["max_tool_calls"] == 60
    assert facts.stop_conditions == {"max_retries": 3}
    assert facts.approval_rules == ("identity-change-needs-human-approval",)
    assert facts.tools_with("approval") == ["reset_password", "unlock_account", "update_ticket"]
    assert "export_data" in facts.tools_with("allowed")


def test_shipped_runbooks_parse_and_match_triggers() -> None:
    books = {b.name: b for b in list_runbooks(RUNBOOKS)}
    assert set(books) == {
        "runaway-loop",
        "cost-spike",
        "privilege-escalation",
        "cross-tenant-export",
        "unreachable-agent",
        "bad-release",
    }
    assert all(len(b.steps) >= 5 for b in books.values())
    assert runbooks_for(RUNBOOKS, "runaway_loop")[0].name == "runaway-loop"
    assert runbooks_for(RUNBOOKS, "unreachable")[0].name == "unreachable-agent"


def test_runbook_front_matter_error_names_the_file_line(tmp_path: Path) -> None:
    path = tmp_path / "x.md"
    with pytest.raises(BadInput, match=r"x\.md:3: invalid TOML"):
        parse_runbook('+++\nname = "x"\ntitle = \n+++\n1. step\n', path)
