"""Cedar policy for tool calls: compile once, evaluate per call, read the annotations.

Every tool call is one Cedar request: principal `User::"<principal>"` (attribute tenant),
action `Action::"call_tool"`, resource `Tool::"<name>"` (attributes from its ToolSpec) and a
context of arguments, tenant, approval state and session counters. Cedar has no floats, so
costs are micro-USD integers and float arguments become strings.

Two annotations carry meaning beyond allow/deny (see fixtures/policies/it-support.cedar):
`@approval("required")` turns a deny that only such policies produced into a human
checkpoint, and `@max_*` annotations declare the budgets the policy sets.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from ..protocol.models import BUDGET_FIELDS, Budgets, policy_sha256
from .errors import PolicyError
from .spans import TOO_DEEP, safe_text

Outcome = Literal["allow", "deny", "approval_required"]

#: Argument types a ToolSpec schema may declare.
ARG_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "list": (list, tuple),
    "dict": (dict,),
    "any": (object,),
}

_INT64 = 2**63 - 1


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """What the policy knows about a tool. `args` maps argument name to a type in ARG_TYPES;
    when it is None the tool declares no schema and any arguments pass."""

    name: str
    version: str | None = None
    read_only: bool = False
    customer_facing: bool = False
    category: str = "general"
    corpus: str | None = None
    region: str | None = None
    args: dict[str, str] | None = None
    required: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for arg, kind in (self.args or {}).items():
            if kind not in ARG_TYPES:
                raise ValueError(f"tool {self.name}: argument {arg!r} has unknown type {kind!r}")

    def schema_violations(self, arguments: Any) -> list[str]:
        """Why these arguments fall outside the declared schema (empty when they fit)."""
        if self.args is None:
            return []
        if not isinstance(arguments, dict):
            return [f"arguments must be an object, got {type(arguments).__name__}"]
        problems = [f"unexpected argument {k!r}" for k in arguments if k not in self.args]
        problems += [f"missing argument {k!r}" for k in self.required if k not in arguments]
        for key, value in arguments.items():
            kind = self.args.get(key)
            if kind is None or value is None:
                continue
            wrong = not isinstance(value, ARG_TYPES[kind]) or (
                kind in ("int", "float") and isinstance(value, bool)
            )
            if wrong:
                problems.append(f"argument {key!r} should be {kind}")
        return problems

    def entity(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {
            "read_only": self.read_only,
            "customer_facing": self.customer_facing,
            "category": self.category,
        }
        if self.corpus is not None:
            attrs["corpus"] = self.corpus
        if self.region is not None:
            attrs["region"] = self.region
        return {"uid": {"type": "Tool", "id": self.name}, "attrs": attrs, "parents": []}


@dataclass(frozen=True, slots=True)
class Evaluation:
    outcome: Outcome
    reasons: tuple[str, ...]
    errors: tuple[str, ...]
    elapsed_us: float


@dataclass(slots=True)
class CompiledPolicy:
    version: str
    text: str
    sha256: str
    loaded_at: float
    policy_set: Any
    count: int
    ids: dict[str, str] = field(default_factory=dict)  # cedar's policyN -> @id
    approval_ids: frozenset[str] = frozenset()  # policyN annotated @approval("required")
    budgets: Budgets = field(default_factory=Budgets)

    @classmethod
    def compile(cls, text: str, version: str) -> CompiledPolicy:
        """Parse and index a policy; PolicyError (one line) when Cedar rejects it."""
        import cedarpy

        try:
            policy_set = cedarpy.PolicySet.from_str(text)
            parsed = json.loads(cedarpy.policies_to_json_str(text))
        except (ValueError, RuntimeError) as exc:
            raise PolicyError(f"invalid Cedar policy: {' '.join(str(exc).split())}") from None
        statics: dict[str, Any] = parsed.get("staticPolicies", {})
        ids: dict[str, str] = {}
        approvals: set[str] = set()
        limits: dict[str, float | int] = {}
        for key, body in statics.items():
            notes: dict[str, str] = body.get("annotations") or {}
            ids[key] = notes.get("id", key)
            if notes.get("approval") == "required":
                approvals.add(key)
            for name in BUDGET_FIELDS:
                if name in notes:
                    value = _annotation_number(name, notes[name], ids[key])
                    limits[name] = min(limits.get(name, value), value)
        try:
            budgets = Budgets(**limits)
        except ValueError as exc:
            raise PolicyError(f"invalid budget annotation: {' '.join(str(exc).split())}") from None
        return cls(
            version=version,
            text=text,
            sha256=policy_sha256(text),
            loaded_at=time.time(),
            policy_set=policy_set,
            count=len(statics),
            ids=ids,
            approval_ids=frozenset(approvals),
            budgets=budgets,
        )

    def evaluate(
        self,
        principal: str,
        principal_tenant: str | None,
        tool: ToolSpec,
        context: dict[str, Any],
    ) -> Evaluation:
        import cedarpy

        started = time.perf_counter()
        user: dict[str, Any] = {
            "uid": {"type": "User", "id": principal},
            "attrs": {},
            "parents": [],
        }
        if principal_tenant is not None:
            user["attrs"]["tenant"] = principal_tenant
        request = {
            "principal": {"type": "User", "id": principal},
            "action": {"type": "Action", "id": "call_tool"},
            "resource": {"type": "Tool", "id": tool.name},
            "context": context,
        }
        result = cedarpy.is_authorized(request, self.policy_set, [user, tool.entity()])
        diagnostics = result.diagnostics
        raw = list(diagnostics.reasons)
        reasons = tuple(self.ids.get(r, r) for r in raw)
        errors = tuple(" ".join(str(e).split()) for e in diagnostics.errors)
        elapsed = (time.perf_counter() - started) * 1e6
        if result.allowed:
            return Evaluation("allow", reasons, errors, elapsed)
        if raw and all(r in self.approval_ids for r in raw):
            return Evaluation("approval_required", reasons, errors, elapsed)
        return Evaluation("deny", reasons, errors, elapsed)


def _annotation_number(name: str, value: str, policy_id: str) -> float | int:
    try:
        number = float(value) if "cost" in name else int(value)
    except ValueError:
        raise PolicyError(f"policy {policy_id}: @{name}({value!r}) is not a number") from None
    if not math.isfinite(number) or number < 0:  # "nan" compares false: no limit at all
        raise PolicyError(f"policy {policy_id}: @{name}({value!r}) must be a finite number >= 0")
    return number


def cedar_value(value: Any, depth: int = 0) -> Any:
    """Make an untrusted JSON value acceptable to Cedar (no floats, no nulls, i64 ints)."""
    if depth > 16:
        return TOO_DEEP
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value if -_INT64 <= value <= _INT64 else str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return {
            safe_text(k, 200): cedar_value(v, depth + 1) for k, v in value.items() if v is not None
        }
    if isinstance(value, list | tuple):
        return [cedar_value(v, depth + 1) for v in value if v is not None]
    return safe_text(value)


def micro_usd(usd: float) -> int:
    return round(usd * 1_000_000)
