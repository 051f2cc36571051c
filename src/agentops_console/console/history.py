"""Sessions the agent no longer holds, read from the records DB (docs/records.md).

An agent keeps finished sessions in a ring; the watcher records them. When the agent
answers 404 (evicted, or the agent restarted) or does not answer, the console opens the
recorded copy instead and says so. The records DB has one writer (the watcher), so the
console opens it read-only (SQLite `mode=ro`): it takes no writer lock, upgrades nothing
and can never write.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from ..protocol.models import LoopCost, PolicyDecision, SessionDetail, Span
from ..protocol.records import SessionRecord


@dataclass(frozen=True, slots=True)
class Recorded:
    record: SessionRecord
    recorded_at: str  # when the watcher (or an import) stored this copy


@dataclass(frozen=True, slots=True)
class LoadedDetail:
    """A session's detail and where it came from, for the detail view to say."""

    detail: SessionDetail
    source: str  # "live" or "records"
    agent: str
    recorded_at: str | None = None

    def origin(self) -> str:
        if self.source == "records":
            return f"from records (recorded {(self.recorded_at or '?')[:19]}Z)"
        return f"live from {self.agent}"


class RecordsReader:
    """The records DB at `path`, opened read-only for each look-up (look-ups run in worker
    threads; a connection is per thread). A missing file is no history, not an error."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path).expanduser()

    def get(self, agent: str | None, session_id: str) -> Recorded | None:
        """The recorded copy of the session, or None. RecordsProblem (one line) for a
        file that is not a records DB of this version."""
        if not self.path.is_file():
            return None
        from ..records.errors import RecordsProblem
        from ..records.store import RecordsStore

        try:
            conn = sqlite3.connect(
                f"file:{quote(str(self.path.resolve()))}?mode=ro", uri=True, timeout=5
            )
        except sqlite3.Error as exc:
            raise RecordsProblem(f"cannot open {self.path}: {exc}") from None
        try:
            _check(conn, self.path)
            sql = "SELECT recorded_at FROM sessions WHERE session_id = ?"
            params: list[str] = [session_id]
            if agent is not None:
                sql += " AND agent = ?"
                params.append(agent)
            row = conn.execute(sql + " LIMIT 1", params).fetchone()
            if row is None:
                return None
            record = RecordsStore(conn, self.path, None).get(session_id, agent)
            return Recorded(record, str(row[0] or ""))
        except sqlite3.DatabaseError as exc:
            raise RecordsProblem(f"{self.path}: {exc}") from None
        finally:
            conn.close()

    async def lookup(self, agent: str, session_id: str) -> tuple[SessionRecord, str] | None:
        """`governance.evidence.RecordsLookup`: the record and where it was found."""
        found = await asyncio.to_thread(self.get, agent, session_id)
        return None if found is None else (found.record, str(self.path))


def records_path(given: Path | None, governance_db: Path | None) -> Path:
    """`--records`, else AGENTOPS_RECORDS, else records.db beside the governance DB (the
    one given with --db, else the default one): where the watcher records by default."""
    import os

    if given is not None:
        return given.expanduser()
    if governance_db is not None and not os.environ.get("AGENTOPS_RECORDS", "").strip():
        return governance_db.expanduser().with_name("records.db")
    from ..records.paths import default_records_path

    return default_records_path()


def _check(conn: sqlite3.Connection, path: Path) -> None:
    """The records store's own check that the file is a records DB, then its version:
    read-only, the console cannot upgrade an older one as `open_store` would."""
    from ..governance.migrations import current_version
    from ..records import schema
    from ..records.errors import RecordsProblem
    from ..records.store import check_is_records

    check_is_records(conn, path, create=False)
    version = current_version(conn)
    if version != schema.LATEST:
        raise RecordsProblem(
            f"{path} has records schema v{version}, this console reads v{schema.LATEST}"
        )


def detail_from_record(record: SessionRecord) -> SessionDetail:
    """The recorded session in the shape the detail view shows (what the endpoint serves)."""
    spans = [
        Span(
            id=s.span_id,
            session_id=record.session_id,
            parent_id=s.parent_span_id,
            kind=s.kind,
            name=s.name,
            loop=s.loop,
            started_at=s.started_at,
            ended_at=s.ended_at,
            latency_ms=s.latency_ms,
            outcome=s.outcome,
            error=s.error,
            principal=record.principal,
            tool=s.tool_name,
            tool_version=s.tool_version,
            arguments=s.arguments,
            output=s.tool_output,
            policy=None
            if s.policy_decision is None
            else PolicyDecision(
                decision=s.policy_decision,
                reasons=[r for r in (s.policy_reason or "").split("; ") if r],
                policy_version=s.policy_version,
                approval_id=None if s.human_override is None else s.human_override.approval_id,
            ),
            model=s.model,
            provider=s.provider,
            tokens_in=s.token_in,
            tokens_out=s.token_out,
            cost_usd=s.estimated_cost_usd,
            confidence=s.confidence,
            attributes=s.attributes,
        )
        for s in record.spans
    ]
    return SessionDetail(
        id=record.session_id,
        agent=record.agent,
        workflow=record.workflow,
        principal=record.principal,
        tenant=record.tenant,
        status=record.status,
        started_at=record.started_at,
        last_event_at=record.last_event_at,
        ended_at=record.ended_at,
        loops=record.counters.loops,
        tool_calls=record.counters.tool_calls,
        consecutive_tool_calls=record.counters.consecutive_tool_calls,
        retries=record.counters.retries,
        unauthorized_attempts=record.counters.unauthorized_attempts,
        tokens_in=record.tokens_in,
        tokens_out=record.tokens_out,
        cost_usd=record.cost_usd,
        loop_cost_usd=record.loop_cost_usd,
        budget=record.budget,
        flags=record.flags,
        killed=record.killed,
        source=record.source,
        outcome=record.final_outcome,
        outcome_reason=record.outcome_reason,
        input=record.input,
        output=record.output,
        trace_id=record.trace_id,
        spans=spans,
        loop_costs=_loop_costs(spans),
    )


def _loop_costs(spans: list[Span]) -> list[LoopCost]:
    by_loop: dict[int, list[Span]] = defaultdict(list)
    for span in spans:
        if span.kind != "agent":
            by_loop[span.loop].append(span)
    return [
        LoopCost(
            loop=loop,
            cost_usd=sum(s.cost_usd for s in group),
            tokens_in=sum(s.tokens_in for s in group),
            tokens_out=sum(s.tokens_out for s in group),
            tool_calls=sum(s.kind == "tool" for s in group),
        )
        for loop, group in sorted(by_loop.items())
    ]
