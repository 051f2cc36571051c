"""The runtime's event log: a bounded ring with monotonically increasing sequence numbers.

Publishing sits on the agent's hot path (every tool call publishes), so it only appends a
record holding references, under a lock no reader holds for more than a list copy; the wire
bytes are made on the stream side, once (`sse.render_batch`). Readers are woken by a bell
the first publish after they went to sleep rings, once per batch rather than once per
event: later publishes see no bell and cost nothing more. Readers take at most `limit`
records at a time, so a stream never holds more than one bounded batch; a reader whose next
record has already left the ring is told so by the endpoint (a `gap` event) and should
re-fetch a snapshot.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from typing import Any, Protocol

from pydantic import BaseModel

from ..protocol.models import Event, EventType, SessionSummary


class SummarySource(Protocol):
    """Anything that can describe a session on the wire (the runtime's session object)."""

    def summary(self) -> SessionSummary: ...


class ModelSource(Protocol):
    """A runtime-internal object (span, approval) that renders itself as a wire model."""

    def to_model(self) -> BaseModel: ...


_MODEL_FIELDS = ("span", "flag", "approval", "workflow_state", "budgets", "policy")


@dataclass(slots=True)
class EventRecord:
    seq: int
    type: EventType
    at: float  # epoch seconds
    session: SummarySource | None
    fields: dict[str, Any]
    _json: bytes | None = field(default=None, repr=False)
    #: The whole SSE message (b"" when it cannot be rendered), set by `sse.render_batch`.
    sse: bytes | None = field(default=None, repr=False)

    def to_event(self) -> Event:
        values: dict[str, Any] = {}
        for key, value in self.fields.items():
            wire = value
            if key in _MODEL_FIELDS and value is not None and not isinstance(value, BaseModel):
                wire = value.to_model()
            values[key] = wire
        summary = self.session.summary() if self.session is not None else None
        if summary is not None:
            values.setdefault("session_id", summary.id)
            values.setdefault("workflow", summary.workflow)
        return Event(
            seq=self.seq,
            type=self.type,
            at=datetime.fromtimestamp(self.at, UTC),
            session=summary,
            **values,
        )

    def json(self) -> bytes | None:
        """Wire JSON, computed once however many streams send it; None for a record that
        cannot be written (streams skip it: one bad record must not end every stream)."""
        if self._json is None:
            try:
                self._json = self.to_event().model_dump_json(exclude_none=True).encode()
            except Exception:
                self._json = b""
        return self._json or None


class EventLog:
    """Thread-safe ring of events; readers block in `wait_after` until something new arrives."""

    def __init__(self, capacity: int = 10_000) -> None:
        if capacity < 1:
            raise ValueError("event log capacity must be at least 1")
        self._ring: deque[EventRecord] = deque(maxlen=capacity)
        self._seq = 0
        self._lock = threading.Lock()
        #: Rung (and dropped) by the first publish after a reader found nothing new.
        self._bell: threading.Event | None = None
        self._closed = False

    @property
    def last_seq(self) -> int:
        return self._seq

    @property
    def first_seq(self) -> int:
        """The oldest sequence number still held (last_seq + 1 while the log is empty)."""
        with self._lock:
            return self._ring[0].seq if self._ring else self._seq + 1

    @property
    def closed(self) -> bool:
        return self._closed

    def publish(
        self, type: EventType, session: SummarySource | None = None, **fields: Any
    ) -> EventRecord:
        with self._lock:
            self._seq += 1
            record = EventRecord(self._seq, type, time.time(), session, fields)
            self._ring.append(record)
            bell, self._bell = self._bell, None
        if bell is not None:  # readers are asleep: one wake-up for all of them
            bell.set()
        return record

    def after(self, seq: int, limit: int | None = None) -> list[EventRecord]:
        """Up to `limit` records with a sequence number above `seq`, oldest first; the first
        one is above `seq + 1` when the records between have left the ring."""
        with self._lock:
            return self._after_locked(seq, limit)

    def _after_locked(self, seq: int, limit: int | None) -> list[EventRecord]:
        newer = min(len(self._ring), self._seq - seq)
        if newer <= 0:
            return []
        take = newer if limit is None else min(newer, limit)
        if take == newer:  # the tail: walk from the right end, not across the whole ring
            tail = list(islice(reversed(self._ring), take))
            tail.reverse()
            return tail
        start = len(self._ring) - newer
        return list(islice(self._ring, start, start + take))

    def wait_after(self, seq: int, timeout: float, limit: int | None = None) -> list[EventRecord]:
        """Block until there is something after `seq`, the log closes, or `timeout` passes."""
        with self._lock:
            if self._seq > seq or self._closed:
                return self._after_locked(seq, limit)
            bell = self._bell
            if bell is None:
                bell = self._bell = threading.Event()
        bell.wait(timeout)
        return self.after(seq, limit)

    def wait(self, seq: int, timeout: float) -> bool:
        """Block until there is something after `seq` (True), or the log closes or `timeout`
        passes (False, unless something came meanwhile)."""
        with self._lock:
            if self._seq > seq:
                return True
            if self._closed:
                return False
            bell = self._bell
            if bell is None:
                bell = self._bell = threading.Event()
        bell.wait(timeout)
        return self._seq > seq

    def reopen(self) -> None:
        """A runtime started again after `stop()` streams again; the sequence carries on."""
        with self._lock:
            self._closed = False

    def close(self) -> None:
        """Wake every waiting reader so streams can end (used by `Runtime.stop`)."""
        with self._lock:
            self._closed = True
            bell, self._bell = self._bell, None
        if bell is not None:
            bell.set()
