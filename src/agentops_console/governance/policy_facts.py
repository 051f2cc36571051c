"""What a Cedar policy really says, as facts a reviewer can hold an answer against.

Budgets come from the `@max_*` annotations (the ones the runtime enforces), stop
conditions from `forbid ... when { context.<counter> > N }` rules, and each tool's
standing from asking Cedar itself: the release's tool catalog (`[tools.NAME]` in the
answers file, attributes as the runtime's ToolSpec) plus any tool the policy names.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import BadInput

BUDGET_ANNOTATIONS = (
    "max_cost_usd_session",
    "max_cost_usd_loop",
    "max_tool_calls",
    "max_consecutive_tool_calls",
    "max_output_tokens",
)

#: Context counters the runtime sends, and the rubric field each one bounds.
COUNTER_FIELDS = {
    "retries": "max_retries",
    "tool_calls": "max_tool_calls",
    "consecutive_tool_calls": "max_consecutive_tool_calls",
    "output_tokens": "max_output_tokens",
    "loops": "max_loops",
    "session_cost_micro_usd": "max_cost_usd_session",
    "loop_cost_micro_usd": "max_cost_usd_loop",
}

ToolStanding = Literal["allowed", "approval", "denied"]
TOOL_ATTRS = ("read_only", "customer_facing", "category", "corpus", "region")


@dataclass(frozen=True, slots=True)
class ToolFact:
    name: str
    standing: ToolStanding
    rules: tuple[str, ...]
    attrs: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "standing": self.standing,
            "rules": list(self.rules),
            "attrs": self.attrs,
        }


@dataclass(frozen=True, slots=True)
class PolicyFacts:
    policies: int
    budgets: dict[str, float | int]
    stop_conditions: dict[str, int | float]
    approval_rules: tuple[str, ...]
    rule_ids: tuple[str, ...]
    tools: dict[str, ToolFact] = field(default_factory=dict)

    def tools_with(self, standing: ToolStanding) -> list[str]:
        return sorted(n for n, t in self.tools.items() if t.standing == standing)

    def readable_corpora(self) -> dict[str, str]:
        """corpus -> retrieval tool, for the retrieval tools the policy lets run."""
        found: dict[str, str] = {}
        for tool in self.tools.values():
            corpus = tool.attrs.get("corpus")
            if tool.standing != "denied" and isinstance(corpus, str):
                found.setdefault(corpus, tool.name)
        return found

    def as_dict(self) -> dict[str, Any]:
        return {
            "policies": self.policies,
            "budgets": self.budgets,
            "stop_conditions": self.stop_conditions,
            "approval_rules": list(self.approval_rules),
            "rules": list(self.rule_ids),
            "tools_allowed_without_approval": self.tools_with("allowed"),
            "tools_requiring_approval": self.tools_with("approval"),
            "tools_denied": self.tools_with("denied"),
            "tools": {n: t.as_dict() for n, t in sorted(self.tools.items())},
        }


#: Bump when derive() changes what it finds: stored facts of another format are re-derived.
FACTS_FORMAT = 1


def facts_to_json(facts: PolicyFacts) -> str:
    return json.dumps(
        {
            "format": FACTS_FORMAT,
            "policies": facts.policies,
            "budgets": facts.budgets,
            "stop_conditions": facts.stop_conditions,
            "approval_rules": list(facts.approval_rules),
            "rules": list(facts.rule_ids),
            "tools": [t.as_dict() for t in facts.tools.values()],
        },
        sort_keys=True,
    )


def facts_from_json(text: str | None) -> PolicyFacts | None:
    """Stored facts, or None when absent or of another format (derive them again)."""
    if not text:
        return None
    try:
        data = json.loads(text)
        if data.get("format") != FACTS_FORMAT:
            return None
        tools = {
            t["name"]: ToolFact(t["name"], t["standing"], tuple(t["rules"]), dict(t["attrs"]))
            for t in data["tools"]
        }
        return PolicyFacts(
            policies=int(data["policies"]),
            budgets=dict(data["budgets"]),
            stop_conditions=dict(data["stop_conditions"]),
            approval_rules=tuple(data["approval_rules"]),
            rule_ids=tuple(data["rules"]),
            tools=tools,
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def parse_policy(text: str, origin: str = "policy") -> dict[str, Any]:
    """Cedar's JSON form of the policy set; BadInput naming `origin` when it does not parse."""
    import cedarpy

    try:
        parsed: dict[str, Any] = json.loads(cedarpy.policies_to_json_str(text))
    except (ValueError, RuntimeError) as exc:
        raise BadInput(f"{origin}: invalid Cedar policy: {' '.join(str(exc).split())}") from None
    if not parsed.get("staticPolicies"):
        raise BadInput(f"{origin}: the Cedar policy has no policies")
    return parsed


def _number(name: str, raw: str, rule: str) -> float | int:
    try:
        number = float(raw) if "cost" in name else int(raw)
    except ValueError:
        raise BadInput(f"policy {rule}: @{name}({raw!r}) is not a number") from None
    if not math.isfinite(number) or number < 0:  # the runtime refuses these too
        raise BadInput(f"policy {rule}: @{name}({raw!r}) must be a finite number >= 0")
    return number


def _conjuncts(node: Any) -> list[dict[str, Any]]:
    """The parts of an && chain (a comparison under || or ! does not always hold)."""
    if isinstance(node, dict) and "&&" in node:
        inner = node["&&"]
        return _conjuncts(inner.get("left")) + _conjuncts(inner.get("right"))
    return [node] if isinstance(node, dict) else []


def _context_attr(node: Any) -> str | None:
    if isinstance(node, dict) and "." in node:
        dot = node["."]
        if dot.get("left") == {"Var": "context"}:
            return str(dot.get("attr"))
    return None


def _stop_limits(body: dict[str, Any]) -> dict[str, float | int]:
    limits: dict[str, float | int] = {}
    for part in _conjuncts(body):
        for op in (">", ">="):
            if op not in part:
                continue
            attr = _context_attr(part[op].get("left"))
            value = part[op].get("right", {}).get("Value")
            if attr in COUNTER_FIELDS and isinstance(value, int):
                limit: float | int = value if op == ">" else value - 1
                if attr.endswith("micro_usd"):
                    limit = limit / 1_000_000
                limits[COUNTER_FIELDS[attr]] = limit
    return limits


def _named_tools(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        if node.get("type") == "Tool" and isinstance(node.get("id"), str):
            found.add(node["id"])
        for value in node.values():
            _named_tools(value, found)
    elif isinstance(node, list):
        for value in node:
            _named_tools(value, found)


def _entity(name: str, attrs: dict[str, Any]) -> dict[str, Any]:
    clean: dict[str, Any] = {
        "read_only": bool(attrs.get("read_only", False)),
        "customer_facing": bool(attrs.get("customer_facing", False)),
        "category": str(attrs.get("category", "general")),
    }
    for key in ("corpus", "region"):
        if isinstance(attrs.get(key), str):
            clean[key] = attrs[key]
    return {"uid": {"type": "Tool", "id": name}, "attrs": clean, "parents": []}


def _cedar_args(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _cedar_args(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_cedar_args(v) for v in value]
    if isinstance(value, float):
        return repr(value)
    return value


def _context(arguments: dict[str, Any], approved: bool) -> dict[str, Any]:
    return {
        "tenant": "review-tenant",
        "workflow": "review",
        "arguments": _cedar_args(arguments),
        "approved_change": approved,
        "human_approved": approved,
        "tool_calls": 0,
        "consecutive_tool_calls": 0,
        "retries": 0,
        "loops": 0,
        "session_cost_micro_usd": 0,
        "loop_cost_micro_usd": 0,
        "output_tokens": 0,
    }


def derive(
    text: str, catalog: dict[str, dict[str, Any]] | None = None, origin: str = "policy"
) -> PolicyFacts:
    """Facts about `text`; `catalog` maps tool name to its attributes (and optional
    `example_arguments`, used when the policy looks at arguments, e.g. an export region)."""
    import cedarpy

    parsed = parse_policy(text, origin)
    statics: dict[str, Any] = parsed["staticPolicies"]
    ids: dict[str, str] = {}
    approvals: list[str] = []
    budgets: dict[str, float | int] = {}
    stops: dict[str, float | int] = {}
    named: set[str] = set()
    for key, body in statics.items():
        notes: dict[str, str] = body.get("annotations") or {}
        rule = notes.get("id", key)
        ids[key] = rule
        if notes.get("approval") == "required":
            approvals.append(rule)
        for name in BUDGET_ANNOTATIONS:
            if name in notes:
                value = _number(name, notes[name], rule)
                budgets[name] = min(budgets.get(name, value), value)
        if body.get("effect") == "forbid":
            for cond in body.get("conditions", []):
                if cond.get("kind") == "when":
                    for fname, limit in _stop_limits(cond.get("body", {})).items():
                        stops[fname] = min(stops.get(fname, limit), limit)
        _named_tools(body.get("resource"), named)
        _named_tools(body.get("conditions"), named)

    policy_set = cedarpy.PolicySet.from_str(text)
    tools: dict[str, ToolFact] = {}
    entries = dict(catalog or {})
    for name in named:
        entries.setdefault(name, {})
    principal: dict[str, Any] = {
        "uid": {"type": "User", "id": "reviewer"},
        "attrs": {"tenant": "review-tenant"},
        "parents": [],
    }
    for name, attrs in sorted(entries.items()):
        arguments = attrs.get("example_arguments", {})
        if not isinstance(arguments, dict):
            raise BadInput(f"[tools.{name}] example_arguments must be a table")
        entities = [principal, _entity(name, attrs)]
        standing: ToolStanding = "allowed"
        rules: tuple[str, ...] = ()
        for approved in (False, True):
            request = {
                "principal": {"type": "User", "id": "reviewer"},
                "action": {"type": "Action", "id": "call_tool"},
                "resource": {"type": "Tool", "id": name},
                "context": _context(arguments, approved),
            }
            result = cedarpy.is_authorized(request, policy_set, entities)
            reasons = tuple(ids.get(r, r) for r in result.diagnostics.reasons)
            if result.allowed:
                standing = "allowed" if not approved else "approval"
                if not approved:
                    rules = reasons
                break
            rules = rules or reasons
            standing = "denied"
        tools[name] = ToolFact(
            name, standing, rules, {k: attrs[k] for k in TOOL_ATTRS if k in attrs}
        )
    return PolicyFacts(
        policies=len(statics),
        budgets=budgets,
        stop_conditions=stops,
        approval_rules=tuple(approvals),
        rule_ids=tuple(ids.values()),
        tools=tools,
    )
