"""watch.toml rules: every kind of mistake is one line naming the file and the line;
matching, the typed actions, and at most one action per rule and target."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from agentops_console.protocol.models import Event, Flag, SessionSummary
from agentops_console.watch.config import load_config, parse_config
from agentops_console.watch.errors import WatchConfigError
from agentops_console.watch.rules import DisableWorkflow, KillSession, RuleBook, SetBudget

from ..conftest import REPO

AT = datetime(2025, 3, 4, 3, 12, 9, tzinfo=UTC)

GOOD = """\
[[rule]]
name = "kill-runaways"
when = { flag = "runaway_loop" }
then = "kill"

[[rule]]
name = "stop-exports"
when = { flag = "policy_denied", workflow = "data-export" }
then = "disable_workflow"

[[rule]]
name = "cap-spend"
when = { cost_usd_gt = 1.5, agent = "it-support" }
then = { budget = { scope = "session", max_cost_usd_session = 2.0 } }
"""


def rules(text: str) -> RuleBook:
    return parse_config(text, "watch.toml").rulebook()


def event(
    kind: str | None = "runaway_loop",
    *,
    session_id: str = "s-1",
    workflow: str = "password-reset",
    cost: float = 0.1,
    status: str = "running",
    severity: str = "critical",
    seq: int = 7,
) -> Event:
    session = SessionSummary.model_validate(
        {
            "id": session_id,
            "agent": "it-support",
            "workflow": workflow,
            "principal": "user-1",
            "status": status,
            "started_at": AT,
            "last_event_at": AT,
            "cost_usd": cost,
        }
    )
    flag = (
        Flag.model_validate({"kind": kind, "severity": severity, "at": AT, "message": "m"})
        if kind
        else None
    )
    return Event(
        seq=seq,
        type="flag" if flag else "session_updated",
        at=AT,
        session_id=session_id,
        workflow=workflow,
        session=session,
        flag=flag,
    )


# -- mistakes: one line, file and line --------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (  # TOML syntax
            '[[rule]]\nname = "a"\nwhen = { flag = "runaway_loop" \nthen = "kill"\n',
            "watch.toml:3: invalid TOML:",
        ),
        (  # unknown key inside a rule, reported at that key's line
            '[[rule]]\nname = "a"\nwhen = { flag = "runaway_loop" }\nthen = "kill"\nwhy = "x"\n',
            "watch.toml:5: rule 1 ('a'): unknown key 'why'",
        ),
        (  # unknown key inside when
            '[[rule]]\nname = "a"\nwhen = { flags = "runaway_loop" }\nthen = "kill"\n',
            "watch.toml:3: rule 1 ('a'): unknown key 'when.flags'",
        ),
        (  # unknown flag kind, in a [rule.when] sub-table
            '[[rule]]\nname = "a"\nthen = "kill"\n[rule.when]\nflag = "runaway"\n',
            "watch.toml:5: rule 1 ('a'): when.flag: unknown flag kind 'runaway'; known:"
            " runaway_loop,",
        ),
        (  # unknown action
            '[[rule]]\nname = "a"\nwhen = { flag = "runaway_loop" }\nthen = "kil"\n',
            "watch.toml:4: rule 1 ('a'): then: unknown action 'kil'; use \"kill\",",
        ),
        (  # unknown action table
            '[[rule]]\nname = "a"\nwhen = { flag = "runaway_loop" }\nthen = { pause = 1 }\n',
            "watch.toml:4: rule 1 ('a'): then: unknown action 'pause';",
        ),
        (  # wrong type
            '[[rule]]\nname = "a"\nwhen = { cost_usd_gt = "lots" }\nthen = "kill"\n',
            "watch.toml:3: rule 1 ('a'): when.cost_usd_gt: Input should be a valid number",
        ),
        (  # missing action
            '[[rule]]\nname = "a"\nwhen = { flag = "runaway_loop" }\n',
            "watch.toml:1: rule 1 ('a'): missing key 'then'",
        ),
        (  # no trigger condition
            '[[rule]]\nname = "a"\nwhen = { agent = "it-support" }\nthen = "kill"\n',
            "watch.toml:3: rule 1 ('a'): when: needs flag, severity or cost_usd_gt",
        ),
        (  # budget: unknown limit and no limit
            '[[rule]]\nname = "a"\nwhen = { cost_usd_gt = 1 }\n'
            'then = { budget = { scope = "session", max_cost = 2 } }\n',
            "watch.toml:4: rule 1 ('a'): unknown key 'then.budget.max_cost'",
        ),
        (
            '[[rule]]\nname = "a"\nwhen = { cost_usd_gt = 1 }\n'
            'then = { budget = { scope = "tenant", max_tool_calls = 2 } }\n',
            "watch.toml:4: rule 1 ('a'): then.budget.scope: Input should be 'session',",
        ),
        (
            '[[rule]]\nname = "a"\nwhen = { cost_usd_gt = 1 }\n'
            'then = { budget = { scope = "agent", max_tool_calls = -2 } }\n',
            "watch.toml:4: rule 1 ('a'): then.budget.max_tool_calls: Input should be greater",
        ),
        (  # the second rule is named by index and name, at its own header
            GOOD + '\n[[rule]]\nname = "Bad Name"\nwhen = { flag = "killed" }\nthen = "kill"\n',
            "watch.toml:17: rule 4 ('Bad Name'): name: String should match pattern",
        ),
        (
            GOOD + '[[rule]]\nname = "cap-spend"\nwhen = { flag = "killed" }\nthen = "kill"\n',
            "watch.toml:16: rule 4: duplicate name 'cap-spend'",
        ),
        (
            '[rule]\nname = "a"\nwhen = { flag = "killed" }\nthen = "kill"\n',
            "watch.toml:1: write [[rule]] (one table per rule), not [rule]",
        ),
        (
            'rules = []\n[[rule]]\nname = "a"\n',
            "watch.toml:1: unknown table or key 'rules'; expected [[sink]] or [[rule]]",
        ),
        (
            '[[sink]]\nkind = "email"\nurl = "http://x"\n',
            "watch.toml:2: sink 1: unknown kind 'email'; use webhook, slack, pagerduty",
        ),
        (
            '[[sink]]\nkind = "webhook"\nurl = "ftp://x/y"\n',
            "watch.toml:3: sink 1: url: must be an http:// or https:// URL with a host",
        ),
        (
            '[[sink]]\nkind = "slack"\nurl = "http://a/b"\nurl_env = "B"\n',
            "watch.toml:1: sink 1: give url or url_env, not both",
        ),
        (
            '[[sink]]\nkind = "pagerduty"\nrouting_key = "abc"\n',
            "watch.toml:3: sink 1: unknown key 'routing_key' (did you mean 'routing_key_env'?)",
        ),
    ],
)
def test_mistakes_are_one_line_with_file_and_line(text: str, message: str) -> None:
    with pytest.raises(WatchConfigError) as caught:
        parse_config(text, "watch.toml")
    got = str(caught.value)
    assert "\n" not in got
    assert got.startswith(message), got


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(WatchConfigError, match=r"^.*nope\.toml: no such file$"):
        load_config(tmp_path / "nope.toml")


def test_the_example_config_parses() -> None:
    config = load_config(REPO / "fixtures" / "watch" / "watch.toml")
    assert [r.name for r in config.rules] == ["kill-runaways", "stop-exports", "cap-spend"]
    assert [s.kind for s in config.sinks] == ["pagerduty", "slack", "webhook"]


# -- matching and actions ------------------------------------------------------------------


def test_no_rules_no_actions() -> None:
    assert rules("").actions_for("it-support", event()) == []


def test_flag_rule_kills_the_session_once() -> None:
    book = rules(GOOD)
    (action,) = book.actions_for("it-support", event())
    assert isinstance(action, KillSession)
    assert (action.session_id, action.agent, action.operator) == (
        "s-1",
        "it-support",
        "watch:kill-runaways",
    )
    assert action.target == "it-support/session/s-1" and action.event_seq == 7
    assert action.reason.startswith("watch rule kill-runaways: flag runaway_loop (critical)")
    assert book.actions_for("it-support", event(seq=8)) == []  # same session: dedup
    (other,) = book.actions_for("it-support", event(session_id="s-2"))
    assert isinstance(other, KillSession) and other.session_id == "s-2"
    (elsewhere,) = book.actions_for("billing", event())  # same id, another agent
    assert elsewhere.agent == "billing"


def test_disable_is_once_per_workflow_across_sessions() -> None:
    book = rules(GOOD)
    denied = event("policy_denied", workflow="data-export", severity="warning")
    (action,) = book.actions_for("it-support", denied)
    assert isinstance(action, DisableWorkflow) and action.workflow == "data-export"
    again = event("policy_denied", session_id="s-9", workflow="data-export")
    assert book.actions_for("it-support", again) == []
    assert book.actions_for("it-support", event("policy_denied", workflow="other")) == []


def test_cost_rule_sets_a_session_budget_for_its_agent_only() -> None:
    book = rules(GOOD)
    assert book.actions_for("it-support", event(None, cost=1.5)) == []  # not > 1.5
    assert book.actions_for("billing", event(None, cost=3.0)) == []
    (action,) = book.actions_for("it-support", event(None, cost=1.73))
    assert isinstance(action, SetBudget)
    assert action.update.scope == "session:s-1"
    assert action.update.changes() == {"max_cost_usd_session": 2.0}
    assert action.update.operator == "watch:cap-spend"
    assert "cost $1.7300 > $1.5" in action.cause
    assert book.actions_for("it-support", event(None, cost=1.9)) == []


def test_severity_threshold_and_lists() -> None:
    book = rules(
        '[[rule]]\nname = "loud"\nwhen = { severity = "warning", workflow = ["a", "b"] }\n'
        'then = { budget = { scope = "workflow", max_tool_calls = 10 } }\n'
    )
    assert book.actions_for("x", event("unpriced", workflow="a", severity="info")) == []
    (action,) = book.actions_for("x", event("unpriced", workflow="b", severity="warning"))
    assert isinstance(action, SetBudget) and action.update.scope == "workflow:b"
    assert book.actions_for("x", event(None, workflow="a", cost=99)) == []  # not a flag


def test_agent_budget_fires_once_per_agent() -> None:
    book = rules(
        '[[rule]]\nname = "a"\nwhen = { flag = ["budget_warning", "budget_exceeded"] }\n'
        'then = { budget = { scope = "agent", max_cost_usd_loop = 0.1 } }\n'
    )
    (action,) = book.actions_for("x", event("budget_warning"))
    assert isinstance(action, SetBudget) and action.update.scope == "agent"
    assert book.actions_for("x", event("budget_exceeded", session_id="s-2")) == []


def test_session_actions_skip_sessions_that_ended() -> None:
    book = rules(GOOD)
    assert book.actions_for("it-support", event(status="completed")) == []
    (action,) = book.actions_for("it-support", event())  # not marked as done by the skip
    assert isinstance(action, KillSession)


def test_every_matching_rule_fires() -> None:
    book = rules(
        GOOD + '[[rule]]\nname = "also"\nwhen = { flag = "runaway_loop" }\n'
        'then = "disable_workflow"\n'
    )
    kinds = [type(a).__name__ for a in book.actions_for("it-support", event())]
    assert kinds == ["KillSession", "DisableWorkflow"]
