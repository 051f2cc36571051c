"""Event records → Server-Sent Events bytes, rendered once for every stream.

Rendering runs in this process beside the agent and competes with it for the GIL, so its
cost is the agent's cost when consoles watch. A record is rendered once (the first stream
that needs it renders, under a lock, the others wait and reuse the bytes), and a batch
renders each session summary and each span once however many events of the batch carry
it: a tool call's `span_started` and `span_ended` share one span, and every event of a
session shares that session's summary. The bytes are exactly what
`Event.model_dump_json(exclude_none=True)` gives (a test compares the two on real runs);
records with other payloads take that reference path.
"""

from __future__ import annotations

import math
import threading
import time
from array import array
from bisect import bisect_right
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from math import isfinite
from typing import TYPE_CHECKING, Any, get_args

from pydantic import BaseModel
from pydantic_core import to_json

from ..protocol.models import Decision, Event, EventType, SpanKind, SpanOutcome
from .spans import NO_ATTRIBUTES, PolicyNote, SpanRecord, jsonable

if TYPE_CHECKING:
    from .events import EventLog, EventRecord

__all__ = [
    "Broadcast",
    "Broadcasts",
    "Gap",
    "gap_message",
    "parse_types",
    "render_batch",
    "span_json",
]

#: Records whose fields are only these can be spliced from cached parts.
_SPLICE_FIELDS = frozenset({"span"})
#: The share of time the stream side may spend rendering (see `_render`), and the
#: longest a stream waits for its turn.
RENDER_SHARE = 0.15
_MAX_PACE_S = 0.05
#: One renderer at a time, whatever the log: the others wait and find the bytes made.
_RENDER_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class _Segment:
    """Events start+1 .. end as the chunks every stream at `start` writes."""

    start: int
    end: int
    chunks: list[bytes]
    size: int


@dataclass(frozen=True, slots=True)
class Gap:
    """The events a stream at some position can no longer get: they left the ring."""

    first: int
    last: int


class _Pace:
    """When rendering may go on: one budget for the process, whatever the number of
    broadcasts (filters) and logs, since they all share the one GIL with the agent."""

    free_at = 0.0


_PACE = _Pace()


class Broadcast:
    """The bytes every stream writes, made once. Caught-up streams stand at the same
    position and write the same segment (a lookup, no per-event work); a stream elsewhere
    (resumed, behind, just opened) gets its own join up to the next segment boundary and
    rides the shared segments from there on. Segments are kept up to `keep_bytes`.

    With `types`, only events of those types are rendered and sent; a batch whose last
    event is skipped ends with an `id:`-only message, so the client's position (its
    Last-Event-ID) moves past what the filter skipped: a skipped event costs a type check."""

    def __init__(
        self,
        log: EventLog,
        batch: int,
        chunk_bytes: int,
        keep_bytes: int,
        types: frozenset[str] | None = None,
    ) -> None:
        self._log = log
        self._batch = batch
        self._chunk_bytes = chunk_bytes
        self._keep_bytes = keep_bytes
        self.types = types
        self._segments: deque[_Segment] = deque()
        self._starts: list[int] = []  # the segments' starts, for bisect
        self._kept = 0
        self._lock = threading.Lock()

    def take(self, position: int) -> tuple[list[bytes], int] | Gap:
        """What a stream that has sent everything up to `position` writes next, and its new
        position; or the gap when the next events have left the ring. When the next events
        need rendering and the render budget is spent, waits (at most _MAX_PACE_S, outside
        the lock) and may return nothing new: the stream checks for closing and asks again."""
        if self.types is None and not self._rendered(position):
            # unfiltered, it renders all it sends: pace before taking the lock or the log's
            wait = _PACE.free_at - time.monotonic()
            if wait > 0:
                time.sleep(min(wait, _MAX_PACE_S))
                if wait > _MAX_PACE_S:
                    return [], position
        for _ in range(2):
            with self._lock:
                taken = self._take(position)
            if not isinstance(taken, float):
                return taken
            time.sleep(min(taken, _MAX_PACE_S))
            if taken > _MAX_PACE_S:
                break
        return [], position

    def _rendered(self, position: int) -> bool:
        """Whether the next events after `position` are in a kept segment (made already)."""
        try:  # read without the lock: another stream may clear the segments meanwhile
            return position < self._segments[-1].end
        except IndexError:
            return False

    def _take(self, position: int) -> tuple[list[bytes], int] | Gap | float:
        segments = self._segments
        if segments and segments[0].start <= position < segments[-1].end:
            index = bisect_right(self._starts, position) - 1
            segment = segments[index]
            if segment.start == position:
                return segment.chunks, segment.end
            return self._made(position, segment.end - position)
        if segments and position == segments[-1].end:
            return self._extend(position)
        if not segments or position > segments[-1].end:  # a stream ahead: a new train
            segments.clear()
            self._starts.clear()
            self._kept = 0
            return self._extend(position)
        # behind the kept segments: a join of its own, up to where they start
        return self._made(position, min(self._batch, segments[0].start - position))

    def _made(self, position: int, limit: int) -> tuple[list[bytes], int] | Gap | float:
        """The next events after `position` (at most `limit`) as chunks; or the gap; or how
        long to wait for the render budget."""
        records = self._log.after(position, limit)
        if not records:
            return [], position
        if records[0].seq > position + 1:
            return Gap(position + 1, records[0].seq - 1)
        types = self.types
        wanted = records if types is None else [r for r in records if r.type in types]
        wait = _render(wanted)
        if wait > 0:
            return wait
        end = records[-1].seq
        tail = b""
        if types is not None and not (wanted and wanted[-1].seq == end and wanted[-1].sse):
            tail = b"id: %d\n\n" % end  # the position, past what the filter skipped
        return _joined(wanted, self._chunk_bytes, tail), end

    def _extend(self, position: int) -> tuple[list[bytes], int] | Gap | float:
        made = self._made(position, self._batch)
        if not isinstance(made, tuple) or made[1] == position:
            return made
        chunks, end = made
        segment = _Segment(position, end, chunks, sum(map(len, chunks)))
        self._segments.append(segment)
        self._starts.append(position)
        self._kept += segment.size
        while len(self._segments) > 1 and self._kept > self._keep_bytes:
            self._kept -= self._segments.popleft().size
            del self._starts[0]
        return made


def _render(records: Sequence[EventRecord]) -> float:
    """Render what is not rendered yet, then keep the next render back long enough that
    rendering stays within RENDER_SHARE of the time: the GIL is shared, so every
    microsecond spent here is one the agent waits. An agent that never pauses then outruns
    the streams, which end with an explicit gap, instead of running at half speed. Returns
    how long to wait first when the budget is spent (0 once rendered, or nothing to do)."""
    if all(r.sse is not None for r in records):
        return 0.0
    wait = _PACE.free_at - time.monotonic()
    if wait > 0:
        return wait
    spent = time.thread_time()
    _render_locked(records)
    spent = time.thread_time() - spent
    if spent > 0:
        _PACE.free_at = time.monotonic() + spent * (1 / RENDER_SHARE - 1)
    return 0.0


def render_batch(records: Sequence[EventRecord]) -> None:
    """Fill `record.sse` for every record of the batch that has none yet. Safe from any
    number of threads: one renders, the rest find the bytes ready."""
    _render_locked(records)


def _render_locked(records: Sequence[EventRecord]) -> None:
    if all(r.sse is not None for r in records):
        return
    with _RENDER_LOCK:
        summaries: dict[int, tuple[BaseModel, bytes]] = {}
        spans: dict[int, bytes] = {}
        for record in records:
            if record.sse is None:
                record.sse = _message(record, _data(record, summaries, spans))


def _message(record: EventRecord, data: bytes | None) -> bytes:
    if data is None:  # cannot be written: streams skip it, one bad record ends no stream
        return b""
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (record.seq, record.type.encode(), data)


def _data(
    record: EventRecord, summaries: dict[int, tuple[BaseModel, bytes]], spans: dict[int, bytes]
) -> bytes | None:
    try:
        if record.fields.keys() <= _SPLICE_FIELDS:
            return _spliced(record, summaries, spans)
        return record.to_event().model_dump_json(exclude_none=True).encode()
    except Exception:
        return None


def _spliced(
    record: EventRecord, summaries: dict[int, tuple[BaseModel, bytes]], spans: dict[int, bytes]
) -> bytes:
    """`Event(seq, type, at, session_id, workflow, session, span, data={})` serialised in the
    model's field order from parts cached for this batch."""
    head: dict[str, Any] = {
        "seq": record.seq,
        "type": record.type,
        "at": datetime.fromtimestamp(record.at, UTC),
    }
    parts: list[bytes] = []
    source = record.session
    if source is not None:
        summary = source.summary()
        cached = summaries.get(id(source))
        if cached is None or cached[0] is not summary:  # summary() is a new object per change
            cached = (summary, summary.model_dump_json(exclude_none=True).encode())
            summaries[id(source)] = cached
        head["session_id"] = summary.id
        head["workflow"] = summary.workflow
        parts.append(b',"session":' + cached[1])
    span = record.fields.get("span")
    if span is not None:
        key = id(span)
        rendered = spans.get(key)
        if rendered is None:
            rendered = span_json(span)
            spans[key] = rendered
        parts.append(b',"span":' + rendered)
    return to_json(head)[:-1] + b"".join(parts) + b',"data":{}}'


def span_json(span: Any) -> bytes:
    """`span.to_model().model_dump_json(exclude_none=True)` without building the model:
    building and validating it was most of an event's cost. Any value the model would
    coerce or refuse takes the model path, so the bytes are the same either way."""
    if isinstance(span, SpanRecord):
        wire = _span_wire(span)
        if wire is not None:
            return to_json(wire)
    model = span if isinstance(span, BaseModel) else span.to_model()
    return model.model_dump_json(exclude_none=True).encode()


_KINDS = frozenset(get_args(SpanKind))
_OUTCOMES = frozenset(get_args(SpanOutcome))
_DECISIONS = frozenset(get_args(Decision))
_SPLIT = ("input", "cache_read", "cache_write", "output", "reasoning", "request")
#: round()'s digits for each part of a split, as map() takes them
_NINES = (9,) * len(_SPLIT)
#: spans.utc without its call frame
_from_timestamp = datetime.fromtimestamp


def _str(value: Any) -> bool:
    return type(value) is str


def _opt_str(value: Any) -> bool:
    return value is None or type(value) is str


def _num(value: Any) -> float | None:
    """A finite float the way a `float` field holds it (ints widen), else None."""
    if type(value) is float:
        return value if math.isfinite(value) else None
    if type(value) is int:
        return float(value)
    return None


def _span_wire(span: SpanRecord) -> dict[str, Any] | None:
    """The wire Span as plain values in the model's field order, None left out; None as a
    whole when any value is not exactly what the model holds (the model path decides).

    Written for speed (every span the detail endpoint and the event stream send comes here,
    on the agent's CPU): exact-type checks inline, no helper calls or generators, one dict
    literal in field order whose absent optional fields are then deleted (a deletion keeps
    the others' order), and no walk of the shared empty attributes."""
    parent_id = span.parent_id
    error = span.error
    principal = span.principal
    tool = span.tool
    tool_version = span.tool_version
    model = span.model
    provider = span.provider
    started = span.started
    attributes = span.attributes
    if not (
        type(span.id) is str
        and type(span.session_id) is str
        and type(span.name) is str
        and span.kind in _KINDS
        and span.outcome in _OUTCOMES
        and (parent_id is None or type(parent_id) is str)
        and (error is None or type(error) is str)
        and (principal is None or type(principal) is str)
        and (tool is None or type(tool) is str)
        and (tool_version is None or type(tool_version) is str)
        and (model is None or type(model) is str)
        and (provider is None or type(provider) is str)
        and type(span.loop) is int
        and type(span.tokens_in) is int
        and type(span.tokens_out) is int
        and type(span.tokens_cache_read) is int
        and type(span.tokens_cache_write) is int
        and type(span.tokens_reasoning) is int
        and type(span.unpriced) is bool
        and (attributes is NO_ATTRIBUTES or all(type(k) is str for k in attributes))
        and (type(started) is float or type(started) is int)
    ):
        return None
    cost = span.cost_usd
    if type(cost) is float:
        if not isfinite(cost):
            return None
    elif type(cost) is int:
        cost = float(cost)
    else:
        return None
    ended = span.ended
    ended_at: datetime | None = None
    if ended is not None:
        if type(ended) is not float and type(ended) is not int:
            return None
        ended_at = _from_timestamp(ended, UTC)
    latency = span.latency_ms
    if latency is not None:
        if type(latency) is float:
            if not isfinite(latency):
                return None
        else:
            latency = _num(latency)
            if latency is None:
                return None
    policy: dict[str, Any] | None = None
    if span.policy is not None:
        policy = _policy_wire(span.policy)
        if policy is None:
            return None
    split: dict[str, float] | None = None
    if span.cost_split is not None:
        split = _split_wire(span.cost_split)
        if split is None:
            return None
    confidence = span.confidence
    if confidence is not None:
        confidence = _num(confidence)
        if confidence is None:
            return None
    arguments = jsonable(span.arguments)
    output = jsonable(span.output)
    wire: dict[str, Any] = {
        "id": span.id,
        "session_id": span.session_id,
        "parent_id": parent_id,
        "kind": span.kind,
        "name": span.name,
        "loop": span.loop,
        "started_at": _from_timestamp(started, UTC),  # spans.utc, without the call
        "ended_at": ended_at,
        "latency_ms": latency,
        "outcome": span.outcome,
        "error": error,
        "principal": principal,
        "tool": tool,
        "tool_version": tool_version,
        "arguments": arguments,
        "output": output,
        "policy": policy,
        "model": model,
        "provider": provider,
        "tokens_in": span.tokens_in,
        "tokens_out": span.tokens_out,
        "tokens_cache_read": span.tokens_cache_read,
        "tokens_cache_write": span.tokens_cache_write,
        "tokens_reasoning": span.tokens_reasoning,
        "cost_usd": cost,
        "cost_split": split,
        "unpriced": span.unpriced,
        "confidence": confidence,
        "attributes": {}
        if attributes is NO_ATTRIBUTES
        else {k: jsonable(v) for k, v in attributes.items()},
    }
    # straight-line deletions: a loop over (name, value) pairs cost more than it saved
    if parent_id is None:
        del wire["parent_id"]
    if ended_at is None:
        del wire["ended_at"]
    if latency is None:
        del wire["latency_ms"]
    if error is None:
        del wire["error"]
    if principal is None:
        del wire["principal"]
    if tool is None:
        del wire["tool"]
    if tool_version is None:
        del wire["tool_version"]
    if arguments is None:
        del wire["arguments"]
    if output is None:
        del wire["output"]
    if policy is None:
        del wire["policy"]
    if model is None:
        del wire["model"]
    if provider is None:
        del wire["provider"]
    if split is None:
        del wire["cost_split"]
    if confidence is None:
        del wire["confidence"]
    return wire


def _split_wire(parts: Sequence[float]) -> dict[str, float] | None:
    """A span's cost split as CostSplit dumps it (rounded like cost_usd); None for a part
    the model must decide. The runtime's own split is an array of doubles: all floats, all
    finite when their sum is, so it is rounded with no Python-level step per part."""
    if len(parts) != len(_SPLIT):
        return None
    if type(parts) is array and parts.typecode == "d" and isfinite(sum(parts)):
        return dict(zip(_SPLIT, map(round, parts, _NINES), strict=True))
    split: dict[str, float] = {}
    for name, part in zip(_SPLIT, parts, strict=True):
        number = _num(part)
        if number is None:
            return None
        split[name] = round(number, 9)
    return split


def _policy_wire(policy: PolicyNote) -> dict[str, Any] | None:
    reasons = policy.reasons
    errors = policy.errors
    version = policy.version
    approval_id = policy.approval_id
    if not (
        policy.decision in _DECISIONS
        and (not reasons or all(type(r) is str for r in reasons))
        and (not errors or all(type(e) is str for e in errors))
        and (version is None or type(version) is str)
        and (approval_id is None or type(approval_id) is str)
    ):
        return None
    wire: dict[str, Any] = {
        "decision": policy.decision,
        # to_json writes a tuple as the array the model's list gives
        "reasons": reasons if type(reasons) is tuple else list(reasons),
        "errors": errors if type(errors) is tuple else list(errors),
    }
    if version is not None:
        wire["policy_version"] = version
    if approval_id is not None:
        wire["approval_id"] = approval_id
    evaluated = policy.evaluated_us
    if evaluated is not None:
        evaluated = _num(evaluated)
        if evaluated is None:
            return None
        wire["evaluated_us"] = evaluated
    return wire


def _joined(records: Sequence[EventRecord], limit: int, tail: bytes = b"") -> list[bytes]:
    """The rendered messages, then `tail`, in chunks of about `limit` bytes (unrenderable
    ones skipped); one C-level join in the usual case of a batch under the limit."""
    parts = [message for record in records if (message := record.sse)]
    if tail:
        parts.append(tail)
    if sum(map(len, parts)) <= limit:
        return [b"".join(parts)] if parts else []
    chunks: list[bytes] = []
    start = size = 0
    for index, message in enumerate(parts):
        size += len(message)
        if size >= limit:
            chunks.append(b"".join(parts[start : index + 1]))
            start, size = index + 1, 0
    if start < len(parts):
        chunks.append(b"".join(parts[start:]))
    return chunks


def gap_message(first: int, last: int, why: str) -> bytes:
    """The one `gap` message a stream ends with. No `id:` line, so a client's last event id
    stays the last event it really got; `seq` repeats it."""
    event = Event(
        seq=first - 1,
        type="gap",
        at=datetime.now(UTC),
        reason=f"events {first}..{last} not sent: {why}; fetch a snapshot and resume",
        gap_from=first,
        gap_to=last,
    )
    return b"event: gap\ndata: " + event.model_dump_json(exclude_none=True).encode() + b"\n\n"


#: Filters kept at once, each with its broadcast's segments (up to keep_bytes / MAX_FILTERS,
#: so all of them together keep no more than the unfiltered one). A stream asking for yet
#: another filter while all are in use gets a broadcast of its own that keeps one segment.
MAX_FILTERS = 8
#: What a stream can ask for: every event type but `gap`, which every stream gets.
STREAM_TYPES = frozenset(get_args(EventType)) - {"gap"}


def parse_types(values: Sequence[str]) -> frozenset[str]:
    """`?types=a,b` (repeatable) as a filter; ValueError (one line) for an empty or unknown
    name. Naming `gap` is allowed and changes nothing: gaps are always sent."""
    names = {name.strip() for value in values for name in value.split(",")} - {""}
    unknown = sorted(names - STREAM_TYPES - {"gap"})
    if unknown:
        known = ", ".join(sorted(STREAM_TYPES))
        raise ValueError(f"unknown event type {unknown[0][:60]!r} in types; known: {known}")
    types = frozenset(names - {"gap"})
    if not types:
        raise ValueError("types names no event type")
    return types


@dataclass(slots=True)
class _Shared:
    broadcast: Broadcast
    streams: int = 0


class Broadcasts:
    """The unfiltered broadcast, and one per filter in use, shared by every stream with that
    filter (a filter is a set: the order of names does not matter)."""

    def __init__(self, log: EventLog, batch: int, chunk_bytes: int, keep_bytes: int) -> None:
        self.all = Broadcast(log, batch, chunk_bytes, keep_bytes)
        self._log = log
        self._batch = batch
        self._chunk_bytes = chunk_bytes
        self._keep_bytes = keep_bytes // MAX_FILTERS
        #: by filter; idle ones (no stream) stay until room is needed
        self._filtered: dict[frozenset[str], _Shared] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._filtered)

    def acquire(self, types: frozenset[str] | None) -> Broadcast:
        """The broadcast for a new stream; `release` it when the stream ends."""
        if types is None:
            return self.all
        with self._lock:
            entry = self._filtered.get(types)
            if entry is None:
                if len(self._filtered) >= MAX_FILTERS:
                    idle = next((k for k, e in self._filtered.items() if not e.streams), None)
                    if idle is None:  # all in use: one of its own, keeping one segment
                        return Broadcast(self._log, self._batch, self._chunk_bytes, 0, types)
                    del self._filtered[idle]
                broadcast = Broadcast(
                    self._log, self._batch, self._chunk_bytes, self._keep_bytes, types
                )
                entry = self._filtered[types] = _Shared(broadcast)
            entry.streams += 1
            return entry.broadcast

    def release(self, broadcast: Broadcast) -> None:
        if broadcast.types is None:
            return
        with self._lock:
            entry = self._filtered.get(broadcast.types)
            if entry is not None and entry.broadcast is broadcast:
                entry.streams -= 1
