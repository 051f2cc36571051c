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

import contextlib
import json
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from ..protocol.models import BUDGET_FIELDS, Budgets, policy_sha256
from ..protocol.text import one_line
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
#: (principal, tenant, tool attributes) combinations whose parsed entities a policy keeps.
ENTITY_CACHE = 4096
_ACTION = {"type": "Action", "id": "call_tool"}
#: Cedar's answer when it has no errors and only its own generated policy ids as reasons
#: (nearly every call): read with one anchored match instead of a JSON parse. Anything else
#: (errors, NoDecision, another layout in a later cedarpy) goes through json.loads.
_CLEAN_ANSWER = re.compile(
    r'\{"decision":"(Allow|Deny)","correlation_id":null,'
    r'"diagnostics":\{"reason":\[((?:"policy\d+"(?:,"policy\d+")*)?)\],'
    r'"id_annotations_by_reason":\{[^{}]*\},"errors":\[\]\}'
)


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

    def entity_key(self) -> tuple[str, bool, bool, str, str | None, str | None]:
        """Everything `entity()` depends on: equal keys give the same Cedar entity."""
        return (
            self.name,
            self.read_only,
            self.customer_facing,
            self.category,
            self.corpus,
            self.region,
        )

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
    order: dict[str, int] = field(default_factory=dict)  # cedar's policyN -> place in the text
    approval_ids: frozenset[str] = frozenset()  # policyN annotated @approval("required")
    budgets: Budgets = field(default_factory=Budgets)
    #: Parsed entities per (principal, tenant, tool attributes): they do not change between
    #: calls, so Cedar parses them once per policy version instead of on every call.
    _entities: dict[Any, _Parsed] = field(default_factory=dict, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _authorize: Callable[..., str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Cedar's own entry point, answering in JSON text: the public `cedarpy.is_authorized`
        # wraps this same call in a one-request batch, copies the request and builds result
        # objects of which the guard reads three fields.
        from cedarpy import _internal

        self._authorize = _internal.is_authorized

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
            order={key: n for n, key in enumerate(sorted(ids, key=_policy_number))},
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
        """One Cedar request, decided exactly as `cedarpy.is_authorized` would with the
        entities `[user, tool.entity()]` (tests/runtime/test_policy_fastpath.py holds it to
        that), but with the entities parsed once, the context serialised once and the answer
        read straight from Cedar's JSON."""
        started = time.perf_counter()
        key = (principal, principal_tenant, tool.entity_key())
        parsed = self._entities.get(key)
        if parsed is None:
            parsed = self._parse_entities(key, principal, principal_tenant, tool)
        request = {
            "principal": parsed.principal,
            "action": _ACTION,
            "resource": parsed.resource,
            "context": encode_context(context),
        }
        answer = self._authorize(request, self.policy_set, parsed.entities, None, False)
        clean = _CLEAN_ANSWER.match(answer)
        if clean is not None:
            allowed = clean[1] == "Allow"
            raw = clean[2][1:-1].split('","') if clean[2] else []
            errors: tuple[str, ...] = ()
        else:
            full = json.loads(answer)
            diagnostics = full.get("diagnostics") or {}
            allowed = full.get("decision") == "Allow"
            raw = list(diagnostics.get("reason") or ())
            errors = tuple([one_line(e, None) for e in diagnostics.get("errors") or ()])
        if len(raw) > 1:  # Cedar hands them over from a hash set: give them the file's order
            order = self.order
            raw.sort(key=lambda r: (order.get(r, len(order)), r))
        ids = self.ids
        reasons = tuple([ids.get(r, r) for r in raw])
        elapsed = (time.perf_counter() - started) * 1e6
        if allowed:
            return Evaluation("allow", reasons, errors, elapsed)
        if raw and all(r in self.approval_ids for r in raw):
            return Evaluation("approval_required", reasons, errors, elapsed)
        return Evaluation("deny", reasons, errors, elapsed)

    def _parse_entities(
        self, key: Any, principal: str, principal_tenant: str | None, tool: ToolSpec
    ) -> _Parsed:
        """Parse `[user, tool]` into a reusable Cedar handle. Entities Cedar rejects stay
        JSON text, so that request gets Cedar's own error, as the plain call would."""
        import cedarpy

        user: dict[str, Any] = {
            "uid": {"type": "User", "id": principal},
            "attrs": {},
            "parents": [],
        }
        if principal_tenant is not None:
            user["attrs"]["tenant"] = principal_tenant
        text = json.dumps([user, tool.entity()])
        entities: Any = text
        handle_type = getattr(cedarpy, "Entities", None)  # absent from older cedarpy
        if handle_type is not None:
            with contextlib.suppress(ValueError):
                entities = handle_type.from_json_str(text)._inner
        parsed = _Parsed(user["uid"], {"type": "Tool", "id": tool.name}, entities)
        with self._lock:
            if len(self._entities) >= ENTITY_CACHE:
                self._entities.clear()  # a fleet of one-off principals: start over, bounded
            self._entities[key] = parsed
        return parsed


@dataclass(frozen=True, slots=True)
class _Parsed:
    """A request's fixed parts: the principal and resource uids and their parsed entities."""

    principal: dict[str, str]
    resource: dict[str, str]
    entities: Any


def _policy_number(policy_id: str) -> tuple[int, str]:
    """`policy10` after `policy9`: Cedar numbers the policies of a text in order."""
    digits = policy_id.removeprefix("policy")
    return (int(digits), "") if digits.isdigit() else (-1, policy_id)


def _no_default(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_C_ENCODER = getattr(json.encoder, "c_make_encoder", None)
#: The context's JSON text as `json.dumps(context)` writes it for `cedarpy.is_authorized`
#: (ASCII escapes and separators included, so a parse error reads the same, column and
#: all), from one C encoder built once: `json.dumps` builds a new one on every call. No cycle
#: check: a context comes out of `cedar_value`, a fresh tree of bounded depth.
_encode = (
    None
    if _C_ENCODER is None
    else _C_ENCODER(
        None,  # markers: no cycle check
        _no_default,
        json.encoder.encode_basestring_ascii,
        None,  # indent
        ": ",  # json.dumps's separators: Cedar's parse errors name a column
        ", ",
        False,  # sort_keys
        False,  # skipkeys
        True,  # allow_nan, as json.dumps
    )
)


def encode_context(context: dict[str, Any]) -> str:
    """`json.dumps(context)`, faster; a cycle (never built by the guard) still gets its
    ValueError rather than a RecursionError."""
    if _encode is None:
        return json.dumps(context)
    try:
        return "".join(_encode(context, 0))
    except RecursionError:
        return json.dumps(context)


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
    kind = type(value)
    if kind is dict and depth < 16:  # the usual arguments: a flat object of text and flags
        out: dict[str, Any] = {}
        for k, v in value.items():
            if v is None:
                continue
            key = k[:200] if type(k) is str else safe_text(k, 200)
            out[key] = v if type(v) is str or type(v) is bool else cedar_value(v, depth + 1)
        return out
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
