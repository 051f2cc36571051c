"""The guard's Cedar fast path decides exactly as a plain `cedarpy.is_authorized` does.

The fast path parses the entities once, serialises the context once and reads Cedar's
answer without building result objects; every request here also goes through the plain
public call (policy text, entities as a list, context as a dict) and the two must agree
on the outcome, the reasons and the errors.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import cedarpy
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentops_console.runtime import ToolSpec
from agentops_console.runtime import policy as policy_module
from agentops_console.runtime.policy import (
    CompiledPolicy,
    Evaluation,
    cedar_value,
    encode_context,
    micro_usd,
)
from agentops_console.runtime.session import step_key
from agentops_console.runtime.spans import TOO_DEEP, safe_text

REFERENCE = (Path(__file__).parents[2] / "fixtures" / "policies" / "it-support.cedar").read_text()
#: Reads the principal's attributes, fails on arguments of the wrong type (Cedar errors),
#: has an @id with characters JSON escapes, and several policies that match together.
PROBING = r"""
@id("everyone")
permit (principal, action == Action::"call_tool", resource);

@id("tenant {match} \"quoted\"")
forbid (principal, action, resource)
when { principal has tenant && principal.tenant != context.tenant };

@id("size")
forbid (principal, action, resource)
when { context.arguments.n > 10 };

@id("big-needs-a-human")
@approval("required")
forbid (principal, action, resource)
when { context.arguments has big && context.arguments.big }
unless { context.human_approved };

@id("second-approval")
@approval("required")
forbid (principal, action, resource)
when { resource.category == "identity" }
unless { context.human_approved };

@id("costly")
forbid (principal, action, resource)
when { context.session_cost_micro_usd > 2000000 || context.retries > 3 };
"""
POLICIES = {
    "reference": CompiledPolicy.compile(REFERENCE, "ref"),
    "probing": CompiledPolicy.compile(PROBING, "probe"),
}
REFERENCE_TOOLS = [
    ToolSpec("kb_search", read_only=True, category="retrieval", corpus="it-kb"),
    ToolSpec("shady_search", read_only=True, category="retrieval", corpus="dark-web"),
    ToolSpec("web_search", read_only=False, category="retrieval", corpus="public-web"),
    ToolSpec("reset_password", category="identity"),
    ToolSpec("change_account", customer_facing=True),
    ToolSpec("read_account", customer_facing=True, read_only=True),
    ToolSpec("export_data", category="export", region="eu-west-1"),
    ToolSpec("unknown_tool"),
]

names = st.text(min_size=1, max_size=24)
SAME = "\x00same as the principal's tenant"
random_tools = st.builds(
    ToolSpec,
    name=names,
    read_only=st.booleans(),
    customer_facing=st.booleans(),
    category=st.sampled_from(["general", "retrieval", "identity", "export"]) | names,
    corpus=st.none() | st.sampled_from(["it-kb", "dark-web"]) | names,
    region=st.none() | names,
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=25,
)
arguments = (
    st.fixed_dictionaries(
        {},
        optional={
            "region": st.sampled_from(["eu-west-1", "us-east-1", "ap-south-1"]) | json_values,
            "tenant": st.sampled_from(["acme", "globex"]) | json_values,
            "n": st.integers(min_value=-(2**70), max_value=2**70) | json_values,
            "big": st.booleans() | json_values,
            "query": st.text(),
        },
    )
    | st.dictionaries(st.text(max_size=10), json_values, max_size=6)
    | json_values
)
counters = st.integers(min_value=0, max_value=2**40) | st.integers(min_value=0, max_value=6)
costs = st.floats(min_value=0, max_value=1e4, allow_nan=False)


def plain(
    policy: CompiledPolicy,
    principal: str,
    tenant: str | None,
    tool: ToolSpec,
    context: dict[str, Any],
) -> tuple[str, Counter[str], Counter[str]]:
    """The same request through the public call, answered as the guard reads an answer."""
    user: dict[str, Any] = {"uid": {"type": "User", "id": principal}, "attrs": {}, "parents": []}
    if tenant is not None:
        user["attrs"]["tenant"] = tenant
    request = {
        "principal": {"type": "User", "id": principal},
        "action": {"type": "Action", "id": "call_tool"},
        "resource": {"type": "Tool", "id": tool.name},
        "context": context,
    }
    result = cedarpy.is_authorized(request, policy.text, [user, tool.entity()])
    raw = list(result.diagnostics.reasons)
    if result.allowed:
        outcome = "allow"
    elif raw and all(r in policy.approval_ids for r in raw):
        outcome = "approval_required"
    else:
        outcome = "deny"
    reasons = Counter(policy.ids.get(r, r) for r in raw)
    errors = Counter(" ".join(str(e).split()) for e in result.diagnostics.errors)
    return outcome, reasons, errors


def fast(evaluation: Evaluation) -> tuple[str, Counter[str], Counter[str]]:
    return evaluation.outcome, Counter(evaluation.reasons), Counter(evaluation.errors)


def guard_context(
    tenant: str | None,
    workflow: str,
    args: Any,
    flags: tuple[bool, bool],
    counts: tuple[int, int, int, int, int],
    spend: tuple[float, float],
) -> dict[str, Any]:
    """The context exactly as runtime/tool_call.py builds it."""
    return {
        "tenant": tenant or "",
        "workflow": workflow,
        "arguments": cedar_value(args if isinstance(args, dict) else {}),
        "approved_change": flags[0],
        "human_approved": flags[1],
        "tool_calls": counts[0],
        "consecutive_tool_calls": counts[1],
        "retries": counts[2],
        "loops": counts[3],
        "session_cost_micro_usd": micro_usd(spend[0]),
        "loop_cost_micro_usd": micro_usd(spend[1]),
        "output_tokens": counts[4],
    }


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    which=st.sampled_from(sorted(POLICIES)),
    principal=st.sampled_from(["u1", "user-1042", "ünïcødé ☃"]) | names,
    tenant=st.none() | st.sampled_from(["acme", "globex", "", " acme "]) | names,
    session_tenant=st.none() | st.just(SAME) | st.sampled_from(["acme", "globex"]) | names,
    tool=st.sampled_from(REFERENCE_TOOLS) | random_tools,
    workflow=st.sampled_from(["support", "data-export"]) | names,
    args=arguments,
    flags=st.tuples(st.booleans(), st.booleans()),
    counts=st.tuples(counters, counters, counters, counters, counters),
    spend=st.tuples(costs, costs),
)
def test_fast_path_decides_as_plain_cedarpy(
    which: str,
    principal: str,
    tenant: str | None,
    session_tenant: str | None,
    tool: ToolSpec,
    workflow: str,
    args: Any,
    flags: tuple[bool, bool],
    counts: tuple[int, int, int, int, int],
    spend: tuple[float, float],
) -> None:
    policy = POLICIES[which]
    if session_tenant == SAME:
        session_tenant = tenant
    context = guard_context(session_tenant, workflow, args, flags, counts, spend)
    expected = plain(policy, principal, tenant, tool, context)
    assert fast(policy.evaluate(principal, tenant, tool, context)) == expected
    # the second call reads the cached entities: still the same answer
    assert fast(policy.evaluate(principal, tenant, tool, context)) == expected


def test_reference_policy_outcomes_match_plain_cedarpy() -> None:
    """Every reference rule, allow and deny, through both paths (a fixed, readable set)."""
    policy = POLICIES["reference"]
    cases = [
        (tool, args, flags, retries)
        for tool in REFERENCE_TOOLS
        for args in ({}, {"region": "ap-south-1"}, {"region": "eu-west-1", "tenant": "globex"})
        for flags in ((False, False), (True, True))
        for retries in (0, 4)
    ]
    outcomes = set()
    for tool, args, flags, retries in cases:
        context = guard_context("acme", "support", args, flags, (1, 1, retries, 1, 0), (0, 0))
        got = fast(policy.evaluate("u1", "acme", tool, context))
        assert got == plain(policy, "u1", "acme", tool, context), (tool.name, args, flags)
        outcomes.add(got[0])
    assert outcomes == {"allow", "deny", "approval_required"}


def outcome_or_error(call: Any) -> Any:
    try:
        return call()
    except Exception as exc:  # the plain call's own failure must be the fast path's too
        return type(exc)


@pytest.mark.parametrize(
    ("principal", "args"),
    [
        ("lone \ud800 surrogate", {}),  # a principal Cedar's binding cannot take
        ("u1", {"query": "lone \udfff surrogate"}),  # a context Cedar cannot parse
        ("u1", {"n": "not a number"}),  # a policy that errors on the value
        ("u1", {"n": 2**70}),  # beyond i64: a string to Cedar, so an error too
    ],
)
def test_requests_cedar_rejects_get_the_same_answer(principal: str, args: Any) -> None:
    policy = POLICIES["probing"]
    tool = ToolSpec("t")
    context = guard_context("acme", "w", args, (False, False), (1, 1, 0, 1, 0), (0, 0))
    expected = outcome_or_error(lambda: plain(policy, principal, "acme", tool, context))
    for _ in range(2):
        got = outcome_or_error(lambda: fast(policy.evaluate(principal, "acme", tool, context)))
        assert got == expected


def test_entities_cedar_rejects_get_cedars_own_error() -> None:
    """Entities Cedar cannot parse are not cached as a handle: the request carries them as
    text and gets Cedar's error, a deny, as the plain call does."""
    policy = POLICIES["reference"]
    tool = ToolSpec("t", corpus="\udc80")  # a lone surrogate, escaped in the entities' JSON
    context = guard_context("acme", "w", {}, (False, False), (1, 1, 0, 1, 0), (0, 0))
    expected = plain(policy, "u1", "acme", tool, context)
    assert expected[0] == "deny" and expected[2]
    for _ in range(2):
        assert fast(policy.evaluate("u1", "acme", tool, context)) == expected


def test_reasons_come_in_the_policy_files_order() -> None:
    """Cedar hands reasons over from a hash set, in a different order from call to call;
    the span, the event and the checkpoint's reason show them in the file's order."""
    policy = POLICIES["probing"]
    tool = ToolSpec("reset_password", category="identity")
    context = guard_context("acme", "w", {"big": True}, (False, False), (1, 1, 0, 1, 0), (0, 0))
    seen = {policy.evaluate("u1", "acme", tool, context).reasons for _ in range(40)}
    assert seen == {("big-needs-a-human", "second-approval")}
    assert policy.evaluate("u1", "acme", tool, context).outcome == "approval_required"


def test_entities_are_parsed_once_per_principal_tenant_and_tool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    policy = CompiledPolicy.compile(REFERENCE, "fresh")
    parsed: list[str] = []
    real = cedarpy.Entities.from_json_str

    def counting(text: str, *args: Any, **kwargs: Any) -> cedarpy.Entities:
        parsed.append(text)
        return real(text, *args, **kwargs)

    monkeypatch.setattr(cedarpy.Entities, "from_json_str", staticmethod(counting))
    context = guard_context("acme", "w", {}, (False, False), (1, 1, 0, 1, 0), (0, 0))
    kb, export = REFERENCE_TOOLS[0], REFERENCE_TOOLS[6]
    for _ in range(50):
        policy.evaluate("u1", "acme", kb, context)
        policy.evaluate("u1", "acme", export, context)
    assert len(parsed) == 2
    policy.evaluate("u1", "globex", kb, context)  # another tenant is another entity
    policy.evaluate("u2", "acme", kb, context)
    policy.evaluate("u1", "acme", ToolSpec("kb_search", category="export"), context)
    assert len(parsed) == 5
    # a new policy version starts with none
    assert len(CompiledPolicy.compile(REFERENCE, "next")._entities) == 0


def test_entity_cache_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(policy_module, "ENTITY_CACHE", 16)
    policy = CompiledPolicy.compile(REFERENCE, "bounded")
    context = guard_context("acme", "w", {}, (False, False), (1, 1, 0, 1, 0), (0, 0))
    for i in range(100):
        assert policy.evaluate(f"user-{i}", "acme", REFERENCE_TOOLS[0], context).outcome == "allow"
        assert len(policy._entities) <= 16


@settings(max_examples=200, deadline=None)
@given(value=json_values)
def test_context_text_is_what_json_dumps_sends(value: Any) -> None:
    """The same text as the public call's `json.dumps(context)`: Cedar's errors quote it."""
    context = {"arguments": cedar_value(value), "raw": value}
    assert encode_context(context) == json.dumps(context)


def reference_cedar_value(value: Any, depth: int = 0) -> Any:
    """cedar_value before its fast path for flat objects: the meaning it must keep."""
    if depth > 16:
        return TOO_DEEP
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value if -(2**63 - 1) <= value <= 2**63 - 1 else str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return {
            safe_text(k, 200): reference_cedar_value(v, depth + 1)
            for k, v in value.items()
            if v is not None
        }
    if isinstance(value, list | tuple):
        return [reference_cedar_value(v, depth + 1) for v in value if v is not None]
    return safe_text(value)


def nested(levels: int, leaf: Any) -> Any:
    value = leaf
    for n in range(levels):
        value = {f"k{n}": value, "s": "x" * 250, 7: [None, 1.5]} if n % 3 else {"k": value}
    return value


long_keys = st.text(max_size=8) | st.text(alphabet="ab", min_size=195, max_size=210)
odd_values = json_values | st.builds(nested, st.integers(0, 20), json_values | st.binary())


@settings(max_examples=300, deadline=None)
@given(value=odd_values | st.dictionaries(long_keys | st.integers(), odd_values))
def test_cedar_value_keeps_its_meaning(value: Any) -> None:
    assert json.dumps(cedar_value(value)) == json.dumps(reference_cedar_value(value))


def reference_step_key(tool: str, arguments: Any) -> str:
    """step_key before its encoder was built once."""
    try:
        args = json.dumps(arguments, sort_keys=True, default=repr, separators=(",", ":"))
    except Exception:
        try:
            args = repr(arguments)
        except Exception:
            args = f"<{type(arguments).__name__} at {id(arguments):x}>"
    return f"{tool}\x00{args}"


class _Unprintable:
    def __repr__(self) -> str:
        raise ValueError("no repr")


@settings(max_examples=300, deadline=None)
@given(value=odd_values | st.dictionaries(st.integers() | st.text(max_size=5), odd_values))
def test_step_key_is_unchanged(value: Any) -> None:
    """A retry is the same tool with the same arguments: the key must not change meaning."""
    assert step_key("t", value) == reference_step_key("t", value)


def test_step_key_of_hostile_arguments_is_unchanged() -> None:
    cycle: list[Any] = []
    cycle.append(cycle)
    deep: dict[str, Any] = {}
    leaf = deep
    for _ in range(5000):
        leaf["k"] = {}
        leaf = leaf["k"]
    for value in (cycle, deep, {"x": _Unprintable()}, {1: "a", "b": 2}, {b"k": 1}):
        assert step_key("t", value) == reference_step_key("t", value)
