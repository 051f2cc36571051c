"""The evidence an incident keeps: a copy of its session's `agentops.record/1` record.

The records DB forgets sessions by age and size, and an agent's ring forgets them sooner;
an incident review months later still needs what the agent did. So when an incident is
opened for a session, its record is fetched (from the agent, else from the records DB) and
stored with the incident, in the governance DB, in the same transaction as the incident
and its audit row (whose details carry the copy's SHA-256, so the audit chain vouches for
it). A copy is bounded (`LIMIT_BYTES`): a bigger record is cut, long texts first, then the
last spans, and the stored note says what was cut. What is kept is still a valid record.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from ..protocol.client import AsyncAgentClient
    from ..protocol.models import Approval
    from ..protocol.records import SessionRecord

#: At most this much record JSON is stored per incident.
LIMIT_BYTES = 256 * 1024
#: Cuts tried in order before spans are dropped: (longest text kept, most list items kept).
_CUTS = ((2000, 100), (200, 20))
_MAX_DEPTH = 12

EvidenceSource = Literal["agent", "records"]


@dataclass(frozen=True, slots=True)
class Evidence:
    """A session's record as captured for an incident, and where it came from."""

    record: SessionRecord
    source: EvidenceSource
    origin: str  # the agent's endpoint, or the records DB's path


@dataclass(frozen=True, slots=True)
class BoundedEvidence:
    """What is stored: the record as JSON text, cut to the limit if it had to be."""

    agent: str
    session_id: str
    source: EvidenceSource
    origin: str
    record_json: str
    record_bytes: int  # the whole record's size, before any cut
    note: str | None  # what was cut, if anything

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.record_json.encode()).hexdigest()

    def audit_details(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "source": self.source,
            "bytes": len(self.record_json.encode()),
            "sha256": self.sha256,
            "cut": self.note is not None,
        }


@dataclass(frozen=True, slots=True)
class StoredEvidence:
    """An incident's evidence as read back."""

    incident_id: int
    agent: str
    session_id: str
    source: str
    origin: str
    captured_at: str
    record_bytes: int
    stored_bytes: int
    note: str | None
    record_json: str

    def record(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.record_json)
        return data

    def summary(self) -> dict[str, Any]:
        """Everything but the record itself."""
        return {
            "session_id": self.session_id,
            "agent": self.agent,
            "source": self.source,
            "origin": self.origin,
            "captured_at": self.captured_at,
            "record_bytes": self.record_bytes,
            "stored_bytes": self.stored_bytes,
            "note": self.note,
        }


def bound(evidence: Evidence, limit: int = LIMIT_BYTES) -> BoundedEvidence:
    """The record as JSON of at most `limit` bytes (see the module doc)."""
    record = evidence.record
    text = record.model_dump_json()
    size = len(text.encode())
    note = None
    if size > limit:
        text, note = _cut(record.model_dump(mode="json"), size, limit)
    return BoundedEvidence(
        agent=record.agent,
        session_id=record.session_id,
        source=evidence.source,
        origin=evidence.origin,
        record_json=text,
        record_bytes=size,
        note=note,
    )


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _fits(data: Any, limit: int) -> bool:
    return len(_dumps(data).encode()) <= limit


def _cut(data: dict[str, Any], size: int, limit: int) -> tuple[str, str]:
    done: list[str] = []
    for max_text, max_items in _CUTS:
        data = _shorten(data, max_text, max_items, 0)
        done.append(f"texts over {max_text} characters and lists over {max_items} items cut")
        if _fits(data, limit):
            break
    spans = list(data.get("spans") or [])
    if not _fits(data, limit):
        low, high = 0, len(spans)  # the most leading spans that fit
        while low < high:
            mid = (low + high + 1) // 2
            if _fits({**data, "spans": spans[:mid]}, limit):
                low = mid
            else:
                high = mid - 1
        data = {**data, "spans": spans[:low]}
        done.append(f"{low} of {len(spans)} spans kept")
    if not _fits(data, limit):  # nothing but the session's own fields is left to cut
        data = {k: v for k, v in data.items() if not isinstance(v, (dict, list))}
        done.append("only the session's plain fields kept")
    note = f"cut to fit {limit} bytes (the record was {size}): " + "; ".join(done)
    return _dumps(data), note


def _shorten(value: Any, max_text: int, max_items: int, depth: int) -> Any:
    if isinstance(value, str):
        return value if len(value) <= max_text else value[:max_text] + "…"
    if depth >= _MAX_DEPTH and isinstance(value, (dict, list)):
        return "…"
    # depth 0 is the record, 1 its fields (spans and flags are never cut here: spans are
    # dropped by count afterwards), 2 a span's or flag's fields, 3 on arguments, outputs
    # and attributes: only those are cut to `max_items`
    if isinstance(value, list):
        items = value if depth <= 1 else value[:max_items]
        return [_shorten(v, max_text, max_items, depth + 1) for v in items]
    if isinstance(value, dict):
        pairs = list(value.items())
        if depth > 2:
            pairs = pairs[:max_items]
        return {k: _shorten(v, max_text, max_items, depth + 1) for k, v in pairs}
    return value


RecordsLookup = Callable[[str, str], Awaitable["tuple[SessionRecord, str] | None"]]


async def collect(
    client: AsyncAgentClient | None,
    agent: str,
    session_id: str,
    *,
    origin: str = "",
    approvals: Iterable[Approval] = (),
    records: RecordsLookup | None = None,
) -> tuple[Evidence | None, str]:
    """The session's record, from the agent (detail + agent info + approvals, through
    `build_record`) or, when the agent no longer has it or does not answer, from the
    records DB (`records(agent, session_id)` → (record, path) or None). Returns the
    evidence, or None and why there is none (one line: the incident opens anyway)."""
    from ..protocol.client import EndpointError
    from ..protocol.records import build_record

    why = "no agent to ask"
    if client is not None:
        try:
            detail = await client.session(session_id)
            info = await client.agent()
            known = [*approvals, *(await client.approvals())]
        except EndpointError as exc:
            why = f"the agent did not give it ({' '.join(str(exc).split())[:200]})"
        else:
            return Evidence(build_record(detail, info, known), "agent", origin), ""
    if records is not None:
        try:
            found = await records(agent, session_id)
        except Exception as exc:  # a missing or unreadable records DB: no evidence, say why
            return None, f"{why}; records DB: {' '.join(str(exc).split())[:200]}"
        if found is not None:
            return Evidence(found[0], "records", found[1]), ""
        why += "; not in the records DB"
    return None, why
