"""Budget scopes: one parser for every caller, one sentence for a bad scope."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from pydantic import ValidationError

from agentops_console.console.store import FleetStore
from agentops_console.protocol.models import Budgets, BudgetState, BudgetUpdate, Event
from agentops_console.protocol.scope import (
    AGENT,
    SCOPE_RULE,
    Scope,
    ScopeError,
    parse_scope,
)
from agentops_console.runtime import Runtime
from agentops_console.watch.config import parse_config
from agentops_console.watch.rules import SetBudget

from ..console.fleetdata import agent_info

TOKEN = "s3cret-token"
AT = datetime(2025, 3, 4, 3, 12, 9, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "kind", "name"),
    [
        ("agent", "agent", ""),
        ("workflow:password_reset", "workflow", "password_reset"),
        ("workflow:a:b", "workflow", "a:b"),  # only the first colon separates
        ("session:s-0001", "session", "s-0001"),
        ("session:" + "x" * 200, "session", "x" * 200),
        ("workflow:*", "workflow", "*"),
        ("session:ünï", "session", "ünï"),
    ],
)
def test_valid_scopes_parse_and_write_back(text: str, kind: str, name: str) -> None:
    scope = parse_scope(text)
    assert (scope.kind, scope.name) == (kind, name)
    assert str(scope) == text
    assert scope == Scope(scope.kind, scope.name)
    assert scope.workflow == (name if kind == "workflow" else None)
    assert scope.session_id == (name if kind == "session" else None)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Agent",
        "agent:",
        "agent:x",
        "agent\n",  # a regex `$` lets this through
        "session:abc\n",
        "workflow:",
        "session:",
        "session",
        "workflow",
        "tenant:acme",
        "session:a b",
        "session:a/b",
        "workflow:" + "x" * 201,
        ":agent",
        " agent",
    ],
)
def test_invalid_scopes_are_one_sentence(text: str) -> None:
    with pytest.raises(ScopeError) as raised:
        parse_scope(text)
    message = str(raised.value)
    assert message.startswith(SCOPE_RULE + ", not '")
    assert "\n" not in message and len(message) < 160
    assert isinstance(raised.value, ValueError)


def test_a_scope_cannot_be_built_invalid() -> None:
    assert Scope("agent") is not AGENT and Scope("agent") == AGENT
    for kind, name in (("agent", "x"), ("workflow", ""), ("session", "a b"), ("tenant", "x")):
        with pytest.raises(ScopeError, match=r"^scope must be"):
            Scope(kind, name)  # type: ignore[arg-type]


def test_the_wire_model_refuses_with_the_same_sentence() -> None:
    with pytest.raises(ValidationError) as raised:
        BudgetUpdate.model_validate({"scope": "agent\n", "max_tool_calls": 3})
    assert f"{SCOPE_RULE}, not 'agent\\n'" in str(raised.value)
    assert BudgetUpdate(scope="workflow:wf").scope == "workflow:wf"


# -- the callers ------------------------------------------------------------------------
@pytest.fixture
def rt() -> Iterator[Runtime]:
    runtime = Runtime(agent="it-support", version="1.4.0", tenant="acme", token=TOKEN)
    runtime.start(host="127.0.0.1", port=0)
    yield runtime
    runtime.stop()


def _put_budgets(rt: Runtime, body: dict[str, object]) -> httpx.Response:
    assert rt.url is not None
    headers = {"Authorization": f"Bearer {TOKEN}"}
    return httpx.put(rt.url + "/v1/budgets", json=body, headers=headers, timeout=5)


@pytest.mark.parametrize("scope", ["agent\n", "session:s-1\n", "workflow:billing\n"])
def test_endpoint_refuses_a_scope_with_a_trailing_newline(rt: Runtime, scope: str) -> None:
    """The old pattern's `$` matched before a final newline: `agent\\n` was stored as the
    budget of a session with an empty id, and answered 200."""
    revision = rt.budgets.revision
    answer = _put_budgets(rt, {"scope": scope, "max_tool_calls": 1})
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert SCOPE_RULE in error and "\n" not in error
    assert rt.budgets.revision == revision  # nothing applied


def test_endpoint_applies_each_scope_and_names_it_in_the_event(rt: Runtime) -> None:
    session = rt.session("billing", "u")
    for scope in ("agent", "workflow:billing", f"session:{session.id}"):
        answer = _put_budgets(rt, {"scope": scope, "max_tool_calls": 4})
        assert answer.status_code == 200, answer.text
        assert answer.json()["scope"] == scope
    events = [r.to_event() for r in rt.events.after(0)]
    changed = [e for e in events if e.type == "budgets_changed"]
    assert [(e.workflow, e.session_id) for e in changed] == [
        (None, None),
        ("billing", None),
        (None, session.id),
    ]


def test_watch_rule_skips_a_scope_no_budget_can_name() -> None:
    """A workflow name with a space (sent by the agent) used to raise pydantic's
    ValidationError out of the rule book; now the rule has nothing to act on."""
    book = parse_config(
        '[[rule]]\nname = "cap"\nwhen = { severity = "warning" }\n'
        'then = { budget = { scope = "workflow", max_tool_calls = 10 } }\n',
        "watch.toml",
    ).rulebook()
    assert book.actions_for("x", _flagged(workflow="a b")) == []
    (action,) = book.actions_for("x", _flagged(workflow="billing"))
    assert isinstance(action, SetBudget) and action.update.scope == "workflow:billing"


def _flagged(workflow: str) -> Event:
    return Event.model_validate(
        {
            "seq": 1,
            "type": "flag",
            "at": AT,
            "agent": "x",
            "session_id": "s-1",
            "workflow": workflow,
            "flag": {"kind": "unpriced", "severity": "warning", "message": "m", "at": AT},
        }
    )


def test_console_store_applies_each_scope_and_ignores_one_nothing_can_name() -> None:
    """`workflow:` (no name) from an agent used to land as the budget of a workflow named
    ''; the store now ignores what parse_scope refuses."""
    store = FleetStore(clock=lambda: AT)
    store.add_agent("a", "http://127.0.0.1:1")
    store.apply_snapshot("a", agent_info("a"), [], [])
    for scope in ("workflow:", "agent\n", "tenant:acme", "session:"):
        store.apply_budgets("a", BudgetState(scope=scope, budgets=Budgets(max_tool_calls=1)))
    assert store.agents["a"].info is not None
    assert store.agents["a"].info.workflow_budgets == {}
    assert store.agents["a"].info.budgets == agent_info("a").budgets
    store.apply_budgets("a", BudgetState(scope="agent", budgets=Budgets(max_tool_calls=5)))
    billing = BudgetState(scope="workflow:billing", budgets=Budgets(max_tool_calls=3))
    store.apply_budgets("a", billing)
    assert store.agents["a"].info.budgets.max_tool_calls == 5
    assert store.agents["a"].info.workflow_budgets == {"billing": Budgets(max_tool_calls=3)}
