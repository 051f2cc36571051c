"""The watcher's fast path: records DB rows straight from an agent's decoded JSON.

Building a `SessionRecord` (pydantic models for the session and each span) and then
serializing it back into rows cost the watcher ~300 µs of CPU per 10-span session, more
than half of what it could spend at 2,000 sessions/s. Here the record's fields
(`record_data`) are checked by one validator for a whole batch that returns plain dicts,
and the rows are cut from those dicts; no model instance is made.

One definition of the record's shape: the validator is *generated* from SessionRecord's own
core schema (every model becomes a typed dict with the same fields, types, defaults and
bounds), so it cannot drift from the model. It is stricter in two places, so that what it
accepts serializes to exactly the bytes the model would give:

- times must be canonical UTC text (`2025-06-02T09:00:00.123456Z`, or without a fraction):
  what pydantic would write back for them;
- the spans' arguments, outputs and attributes are taken as they are (decoded JSON, as
  record_from_wire does).

A session the fast path does not accept (a time with an offset, say) is not refused: it
goes through `record_from_wire` and `session_row`, which decides (a ValueError is a gap
row). tests/records/test_wire_rows.py checks that both give the same rows.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic_core import SchemaSerializer, SchemaValidator, ValidationError

from ..protocol.models import AgentInfo, Approval
from ..protocol.records import (
    ANSWERED,
    COUNTERS,
    FINAL_STATUSES,
    SESSION_FROM_WIRE,
    SPAN_FROM_WIRE,
    SessionRecord,
    SpanRecord,
    computed_fields,
    default_outcome,
)
from . import schema
from .store import SessionRows

#: Canonical UTC times only: what pydantic serializes an aware UTC time as (6 fraction
#: digits, none when the fraction is zero), on a day that exists. 29 February is left to the
#: validated path (a regex cannot tell leap years). Anything else takes the validated path.
_YEAR = "(?:[1-9]\\d{3}|0[1-9]\\d{2}|00[1-9]\\d|000[1-9])"
_DAY = (
    "(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\\d|3[01])"
    "|(?:0[469]|11)-(?:0[1-9]|[12]\\d|30)"
    "|02-(?:0[1-9]|1\\d|2[0-8]))"
)
_FRACTION = "(?:[1-9]\\d{5}|0[1-9]\\d{4}|00[1-9]\\d{3}|000[1-9]\\d{2}|0000[1-9]\\d|00000[1-9])"
TIME_PATTERN = f"^{_YEAR}-{_DAY}T(?:[01]\\d|2[0-3]):[0-5]\\d:[0-5]\\d(?:\\.{_FRACTION})?Z$"
#: Span fields that are JSON values by construction (set as they are, as record_from_wire
#: does, instead of being walked value by value).
_PAYLOADS = frozenset({"arguments", "tool_output", "attributes"})


def _time_schema() -> dict[str, Any]:
    return {"type": "str", "pattern": TIME_PATTERN, "strict": True}


def _model_default(factory: Any) -> Any:
    """A default_factory that makes a model makes its dict instead."""
    if isinstance(factory, type) and issubclass(factory, BaseModel):
        made = factory().model_dump()
        return lambda: copy.deepcopy(made)
    return factory


#: Validation aliases of the fast path: the record's fields read under their wire keys.
_FROM_WIRE: dict[type[BaseModel], dict[str, str]] = {
    SessionRecord: SESSION_FROM_WIRE,
    SpanRecord: SPAN_FROM_WIRE,
}


def _as_dicts(node: Any, owner: Any = None, field: str | None = None, wire: bool = False) -> Any:
    """`node` (a core schema) with models as typed dicts, times as canonical text, and the
    span payloads as `any`; with `wire`, the session's and spans' copied fields are read
    under their wire keys."""
    if isinstance(node, list):
        return [_as_dicts(item, owner, field, wire) for item in node]
    if not isinstance(node, dict):
        return node
    kind = node.get("type")
    if owner is SpanRecord and field in _PAYLOADS and kind not in ("default", "nullable"):
        return {"type": "any"}
    if kind == "datetime":
        return _time_schema()
    if kind == "model":
        fields_schema = node["schema"]
        if fields_schema.get("type") != "model-fields":
            raise TypeError(f"{node['cls']}: unsupported model schema {fields_schema['type']}")
        cls = node["cls"]
        extra = cls.model_config.get("extra") or "ignore"
        fields: dict[str, Any] = {}
        aliases = _FROM_WIRE.get(cls, {}) if wire else {}
        for name, spec in fields_schema["fields"].items():
            inner = _as_dicts(spec["schema"], cls, name, wire)
            fields[name] = {
                "type": "typed-dict-field",
                "schema": inner,
                "required": inner.get("type") != "default",
            }
            if name in aliases:
                fields[name]["validation_alias"] = aliases[name]
        out: dict[str, Any] = {"type": "typed-dict", "fields": fields, "extra_behavior": extra}
        if "ref" in node:
            out["ref"] = node["ref"]
        return out
    out = {key: _as_dicts(value, owner, field, wire) for key, value in node.items()}
    if kind == "default" and "default_factory" in out:
        out["default_factory"] = _model_default(out["default_factory"])
    return out


def column_time(value: str) -> str:
    """A canonical UTC time as the store's columns hold it (`utc_text`)."""
    if len(value) == 20:  # no fraction
        return value[:-1] + ".000000+00:00"
    return value[:-1] + "+00:00"


def dict_schema(model: type[BaseModel], *, wire: bool = False) -> Any:
    """`model`'s core schema turned into the plain-dict one (see the module doc)."""
    return _as_dicts(copy.deepcopy(model.__pydantic_core_schema__), wire=wire)


_VALIDATOR = SchemaValidator(dict_schema(SessionRecord, wire=True))
_BATCH = SchemaValidator({"type": "list", "items_schema": dict_schema(SessionRecord, wire=True)})


def _data_serializer(model: type[BaseModel], columns: Iterable[str]) -> SchemaSerializer:
    """The model's own serialization (field order, nested records, and with exclude_none
    its nulls left out) for the dict form, of the fields that are not columns: what goes
    into a row's `data`. (Cheaper than serializing with an `exclude` set every call.)"""
    root = dict_schema(model)
    fields = root["schema"]["fields"] if root["type"] == "definitions" else root["fields"]
    for column in columns:
        del fields[column]
    return SchemaSerializer(root)


def _list_serializer(model: type[BaseModel]) -> SchemaSerializer:
    """The model's own serialization of a list of its dict forms: a session's spans, one
    call for the whole array."""
    root = dict_schema(model)
    if root["type"] == "definitions":
        items = {**root, "schema": {"type": "list", "items_schema": root["schema"]}}
        return SchemaSerializer(items)
    return SchemaSerializer({"type": "list", "items_schema": root})


_SESSION_DATA = _data_serializer(SessionRecord, (*schema.SESSION_COLUMNS, "spans"))
_SPANS = _list_serializer(SpanRecord)


def rows_of(data: dict[str, Any]) -> SessionRows:
    """Rows from a record's fields as the generated validator returns them."""
    spans = data["spans"]
    flags = data["flags"]
    kinds = ",".join(flag["kind"] for flag in flags) if flags else ""
    ended = data["ended_at"]
    last = column_time(data["last_event_at"])
    final = data["status"] in FINAL_STATUSES
    values: list[Any] = [
        data["agent"],
        data["session_id"],
        data["agent_version"],
        data["tenant"],
        data["workflow"],
        data["principal"],
        data["trace_id"],
        column_time(data["started_at"]),
        None if ended is None else column_time(ended),
        last,
        data["status"],
        data["final_outcome"],
        data["tokens_in"],
        data["tokens_out"],
        data["cost_usd"],
        int(final),
        len(spans),
        f",{kinds}," if kinds else "",
        None,
        _SESSION_DATA.to_json(data, exclude_none=True).decode(),
    ]
    spans_json = _SPANS.to_json(spans, exclude_none=True).decode()
    return SessionRows(data["agent"], data["session_id"], final, last, values, spans_json)


def wire_input(
    detail: dict[str, Any], agent: AgentInfo, approvals: Sequence[Approval] = ()
) -> dict[str, Any]:
    """The detail with the record fields it does not hold as they are worked out
    (`computed_fields`, as in record_data); copies, the detail is left as it was. ValueError
    when a part the record would not check has the wrong shape."""
    spans, session = computed_fields(detail, agent, approvals)
    return {**detail, **session, "spans": [{**span, **computed} for span, computed in spans]}


def fast_rows(
    details: Sequence[dict[str, Any]],
    agent: AgentInfo,
    approvals: Mapping[str, Sequence[Approval]] | None = None,
) -> list[SessionRows | None]:
    """Rows for each detail, or None for one the fast path does not take (the caller builds
    it with record_from_wire instead, which accepts or refuses it). One validator call for
    the whole batch; only when it fails is each session checked alone. `approvals`: those
    known, by session id."""
    held = approvals or {}
    inputs: list[dict[str, Any] | None] = []
    for detail in details:
        try:
            inputs.append(wire_input(detail, agent, held.get(str(detail.get("id")), ())))
        except (ValueError, TypeError, AttributeError):
            inputs.append(None)
    ready = [i for i in inputs if i is not None]
    try:
        checked: list[dict[str, Any] | None] = list(_BATCH.validate_python(ready))
    except ValidationError:
        checked = [_one(i) for i in ready]
    it = iter(checked)
    out: list[SessionRows | None] = []
    for i in inputs:
        data = None if i is None else next(it)
        out.append(None if data is None else _rows_or_none(data))
    return out


def _one(fields: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return dict(_VALIDATOR.validate_python(fields))
    except ValidationError:
        return None


def _rows_or_none(data: dict[str, Any]) -> SessionRows | None:
    try:
        return rows_of(data)
    except (ValueError, TypeError):  # e.g. text JSON cannot encode: let the model decide
        return None


# -- straight from the answer's bytes ---------------------------------------------------------
# Decoding a batch answer (from_json), copying it into the record's fields (wire_input) and
# validating those (one validate_python) cost ~190 µs of the watcher's CPU per 10-span session:
# the JSON was walked three times. The answer is validated from its bytes instead, by one
# validator built from the same record schema: the copied fields read under their wire keys,
# the computed ones as placeholders (so each dict keeps the record's field order, which the
# serializer follows), and the wire values they are worked out from as extra keys (typed
# where the record would check what is made of them, so this path is never laxer). Then
# `_complete` works them out on the validated dicts, as computed_fields does on the wire's.

#: Extra keys of the validated dicts: the wire values the computed fields are made from (the
#: data serializers ignore keys that are not record fields).
_WIRE = "wire:"
#: Alias of the placeholders: a key no agent sends. They must be null: `_complete` leaves
#: some as they are (a span without policy), so a session sending anything else under it
#: goes the decoded way, which ignores the key.
_UNREAD = "\x00agentops:computed"
_PLACEHOLDER = {"type": "none"}
_SPAN_COMPUTED = ("parent_trace_id", "policy_decision", "policy_reason", "policy_version")
_SESSION_COMPUTED = ("agent_version", "final_outcome", "counters", "policy_version")


def _field(schema: Any, alias: str, default: Any = None) -> dict[str, Any]:
    return {
        "type": "typed-dict-field",
        "schema": {"type": "default", "schema": schema, "default": default},
        "required": False,
        "validation_alias": alias,
    }


def _nullable(schema: Any) -> dict[str, Any]:
    return {"type": "nullable", "schema": schema}


def _inner(field: dict[str, Any]) -> Any:
    """A record field's value schema without its default (and null)."""
    schema = field["schema"]
    while schema["type"] in ("default", "nullable"):
        schema = schema["schema"]
    return schema


def _answer_schema() -> dict[str, Any]:
    """GET /v1/session-details' answer, each session validated as the record's fields (see
    above); a session that does not pass is None, and the caller decodes it the other way."""
    root: dict[str, Any] = dict_schema(SessionRecord, wire=True)
    session = root["schema"]
    fields = session["fields"]
    span = fields["spans"]["schema"]["schema"]["items_schema"]
    span_fields = span["fields"]
    any_value = {"type": "any"}
    texts = {"type": "list", "items_schema": {"type": "str"}}
    policy = {
        "type": "typed-dict",
        "fields": {
            "decision": _field(_nullable(_inner(span_fields["policy_decision"])), "decision"),
            "policy_version": _field(_nullable({"type": "str"}), "policy_version"),
            "reasons": _field(texts, "reasons", []),
            "errors": _field(texts, "errors", []),
            "approval_id": _field(_nullable({"type": "str"}), "approval_id"),
        },
        "extra_behavior": "ignore",
    }
    for name in (*_SPAN_COMPUTED, "human_override"):
        span_fields[name] = _field(_PLACEHOLDER, _UNREAD)
    span_fields["attributes"]["schema"]["schema"] = {
        "type": "dict",
        "keys_schema": {"type": "str"},
        "values_schema": any_value,
    }
    span_fields[_WIRE + "policy"] = _field(_nullable(policy), "policy")
    outcome = _inner(fields["final_outcome"])
    counters = fields["counters"]["schema"]["schema"]["fields"]
    for name in _SESSION_COMPUTED:
        fields[name] = _field(_PLACEHOLDER, _UNREAD)
    fields[_WIRE + "outcome"] = _field(_nullable(outcome), "outcome")
    for name in COUNTERS:
        fields[_WIRE + name] = _field(_inner(counters[name]), name, 0)
    item = {"type": "default", "schema": session, "default": None, "on_error": "default"}
    root["schema"] = {
        "type": "typed-dict",
        "fields": {
            "sessions": {
                "type": "typed-dict-field",
                "schema": {"type": "list", "items_schema": item},
                "required": True,
            },
            "missing": _field(texts, "missing", []),
            "more": _field(texts, "more", []),
        },
        "extra_behavior": "ignore",
    }
    return root


_ANSWER = SchemaValidator(_answer_schema())


def _complete(data: dict[str, Any], agent: AgentInfo) -> None:
    """Work out the computed fields of a session validated by `_ANSWER`, as computed_fields
    does for one without known approvals."""
    trace = data["trace_id"]
    version = None
    for span in data["spans"]:
        attributes = span["attributes"]
        parent = attributes.get("agentops.parent_trace_id")
        span["parent_trace_id"] = parent if isinstance(parent, str) else None
        if trace is None:
            otel = attributes.get("otel.trace_id")
            if isinstance(otel, str):
                trace = otel
        policy = span[_WIRE + "policy"]
        if policy is None:
            continue
        decision = span["policy_decision"] = policy["decision"]
        span_version = span["policy_version"] = policy["policy_version"]
        if span_version:
            version = span_version
        parts = policy["reasons"] + policy["errors"]
        if not parts and span["outcome"] == "denied" and span["error"]:
            parts.append(span["error"])
        span["policy_reason"] = "; ".join(parts) or None
        if decision in ANSWERED:  # answered, by whom unknown (no approvals here)
            span["human_override"] = {
                "decision": ANSWERED[decision],
                "by": None,
                "at": None,
                "reason": None,
                "approval_id": policy["approval_id"],
            }
    data["agent_version"] = agent.version
    if data["tenant"] is None:
        data["tenant"] = agent.tenant
    data["trace_id"] = trace
    data["final_outcome"] = data[_WIRE + "outcome"] or default_outcome(data["status"])
    data["counters"] = {name: data[_WIRE + name] for name in COUNTERS}
    data["policy_version"] = version or agent.policy.version


def _checkpoints(data: dict[str, Any]) -> bool:
    """Whether a span may be a human checkpoint, whose override computed_fields matches to a
    known Approval (a span without an approval id or an answered decision never is)."""
    for span in data["spans"]:
        policy = span[_WIRE + "policy"]
        if policy is not None and (
            policy["approval_id"] is not None or policy["decision"] in ANSWERED
        ):
            return True
    return False


@dataclass(frozen=True, slots=True)
class AnswerRows:
    """Rows cut from a session-details answer's bytes. `others`: positions in its `sessions`
    this path did not take (not valid as it checks them, or a checkpoint with known
    approvals): the caller decodes the answer and builds those with fast_rows /
    record_from_wire."""

    rows: dict[str, SessionRows]
    others: list[int]
    more: list[str]


def answer_rows(
    body: bytes, agent: AgentInfo, approvals: Mapping[str, Sequence[Approval]]
) -> AnswerRows | None:
    """Rows for the sessions asked for (`approvals`: those known, by every id asked for) in a
    GET /v1/session-details answer, validated straight from its bytes; None when the answer
    as a whole is not one this path reads (the caller decodes it and decides)."""
    try:
        answer = _ANSWER.validate_json(body)
    except ValidationError:
        return None
    rows: dict[str, SessionRows] = {}
    others: list[int] = []
    for idx, data in enumerate(answer["sessions"]):
        if data is None:
            others.append(idx)
            continue
        session_id = data["session_id"]
        known = approvals.get(session_id)
        if known is None:
            continue  # not one we asked for
        if known and _checkpoints(data):  # matched to their Approval by computed_fields
            others.append(idx)
            continue
        _complete(data, agent)
        cut = _rows_or_none(data)
        if cut is None:
            others.append(idx)
        else:
            rows[session_id] = cut
    return AnswerRows(rows, others, answer["more"])
