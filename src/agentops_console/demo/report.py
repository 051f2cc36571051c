"""What happened in a demo run: sessions, flags, detection times, outages and actions.

The recorder listens to the same event streams an operator's console gets, so detection
times are measured end to end: from the moment the runtime raised a flag to the moment a
client on the other side of the HTTP endpoint received it. The final session states are
read from the fleet's runtimes in process, so sessions that ended while an agent was
down are still counted.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..protocol.models import SessionSummary
from ..protocol.text import clean
from .autorespond import Action
from .fleet import Fleet, FleetNote
from .watch import Reachability, Seen

if TYPE_CHECKING:
    from .companion import WatchPaths, WatchSummary

#: Flag kinds that are trouble (the rest are bookkeeping such as approval_required).
TROUBLE_FLAGS = (
    "runaway_loop",
    "low_confidence_retrieval",
    "policy_denied",
    "policy_near_miss",
    "budget_warning",
    "budget_exceeded",
    "consecutive_tool_calls",
    "approval_timeout",
    "killed",
    "workflow_disabled",
)


@dataclass(frozen=True, slots=True)
class Detection:
    kind: str
    agent: str
    session_id: str | None
    workflow: str | None
    message: str
    raised_at: float
    seen_at: float

    @property
    def latency_ms(self) -> float:
        return round((self.seen_at - self.raised_at) * 1000, 1)


@dataclass
class Recorder:
    """A watcher listener that keeps the first sighting of each flag per session."""

    started_at: float
    detections: list[Detection] = field(default_factory=list)
    reachability: list[Reachability] = field(default_factory=list)
    first_session_seen: float | None = None
    events_seen: int = 0
    _keys: set[tuple[str, str | None, str]] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, seen: Seen) -> None:
        event = seen.event
        with self._lock:
            self.events_seen += 1
            if event.type == "session_started" and self.first_session_seen is None:
                self.first_session_seen = seen.seen_at
            if event.type != "flag" or event.flag is None:
                return
            key = (seen.agent, event.session_id, event.flag.kind)
            if key in self._keys:
                return
            self._keys.add(key)
            self.detections.append(
                Detection(
                    kind=event.flag.kind,
                    agent=seen.agent,
                    session_id=event.session_id,
                    workflow=event.workflow,
                    message=event.flag.message,
                    raised_at=event.flag.at.timestamp(),
                    seen_at=seen.seen_at,
                )
            )

    def on_reach(self, change: Reachability) -> None:
        with self._lock:
            self.reachability.append(change)


def build_report(
    fleet: Fleet,
    recorder: Recorder,
    actions: list[Action],
    *,
    ended_at: float,
    auto_respond: bool,
    watch: WatchSummary | None = None,
    watch_paths: WatchPaths | None = None,
) -> dict[str, Any]:
    """The JSON document `agentops demo --headless --json` prints."""
    started = fleet.started_at or recorder.started_at
    notes = list(fleet.notes)
    planned = {n.session_id: n for n in notes if n.kind == "session_planned" and n.session_id}
    sessions = _final_sessions(fleet)
    by_kind: Counter[str] = Counter()
    notable = []
    for agent, summary in sessions:
        note = planned.get(summary.id)
        kind = note.trouble if note is not None and note.trouble else "ordinary"
        by_kind[kind] += 1
        trouble_flags = [f.kind for f in summary.flags if f.kind in TROUBLE_FLAGS]
        if kind != "ordinary" or trouble_flags:
            notable.append(_session_row(agent, summary, kind))
    flags: Counter[str] = Counter(d.kind for d in recorder.detections)
    detections = [_detection_row(d, planned, started) for d in recorder.detections]
    latencies = sorted(d.latency_ms for d in recorder.detections)
    return {
        "scenario": fleet.scenario.name,
        "seed": fleet.seed,
        "speed": fleet.speed,
        "auto_respond": auto_respond,
        "started_at": _iso(started),
        "duration_s": round(ended_at - started, 3),
        "scenario_s": round((ended_at - started) * fleet.speed, 1),
        "first_session_seen_s": (
            None
            if recorder.first_session_seen is None
            else round(recorder.first_session_seen - started, 3)
        ),
        "events_seen": recorder.events_seen,
        "agents": _agents(fleet, sessions),
        "sessions": {
            "total": len(sessions),
            "by_status": dict(Counter(s.status for _, s in sessions)),
            "by_kind": dict(by_kind),
            "refused": sum(1 for n in notes if n.kind == "session_refused"),
            "dropped": sum(1 for n in notes if n.kind == "session_dropped"),
        },
        "flags": dict(flags),
        "detection_latency_ms": {
            "count": len(latencies),
            "median": latencies[len(latencies) // 2] if latencies else None,
            "max": latencies[-1] if latencies else None,
        },
        "trouble": _trouble_rows(notes, sessions, started),
        "not_reached": _not_reached(fleet),
        "notable_sessions": notable,
        "detections": detections,
        "outages": _outages(notes, recorder.reachability, started),
        "actions": [_action_row(a, started) for a in actions],
        **_watch_part(watch, watch_paths, started),
    }


def _watch_part(
    watch: WatchSummary | None, paths: WatchPaths | None, started: float
) -> dict[str, Any]:
    """What the demo's `agentops watch` did: sessions recorded, incidents, pages."""
    if watch is None:
        return {"recorded": None, "incidents": [], "pages": None, "watch": None}
    incidents = [
        {
            "id": i["id"],
            "cause": i["cause"],
            "agent": i["agent"],
            "session_id": i["session_id"],
            "severity": i["severity"],
            "runbook": i["runbook"],
            "detected_s": round(i["detected_at"] - started, 3),
            "mttd_s": i["mttd_s"],
        }
        for i in watch.incidents
    ]
    return {
        "recorded": watch.recorded,
        "incidents": incidents,
        "pages": watch.pages_sent,
        "watch": {
            "records": str(paths.records) if paths else None,
            "pages_file": str(paths.pages) if paths else None,
            "governance_db": str(paths.governance) if paths else None,
            "lost": watch.lost,
            "gaps": watch.gaps,
            "pages_failed": watch.pages_failed,
            "error": watch.error,
            "log": watch.log,
        },
    }


def _final_sessions(fleet: Fleet) -> list[tuple[str, SessionSummary]]:
    out: dict[tuple[str, str], tuple[str, SessionSummary]] = {}
    for agent, runtime in fleet.runtimes():
        for summary in runtime.session_summaries():
            out[(agent, summary.id)] = (agent, summary)
    return sorted(out.values(), key=lambda pair: pair[1].started_at)


def _agents(fleet: Fleet, sessions: list[tuple[str, SessionSummary]]) -> list[dict[str, Any]]:
    rows = []
    restarts = Counter(n.agent for n in fleet.notes if n.kind == "agent_up")
    last_state = {n.agent: n.kind for n in fleet.notes if n.kind in ("agent_down", "agent_up")}
    for endpoint in fleet.endpoints():
        mine = [s for a, s in sessions if a == endpoint.agent]
        agent = fleet.scenario.agent(endpoint.agent)
        rows.append(
            {
                "agent": endpoint.agent,
                "version": agent.version,
                "tenant": agent.tenant,
                "url": endpoint.url,
                "up": last_state.get(endpoint.agent) != "agent_down",
                "restarts": restarts[endpoint.agent],
                "sessions": len(mine),
                "cost_usd": round(sum(s.cost_usd for s in mine), 4),
                "tokens_in": sum(s.tokens_in for s in mine),
                "tokens_out": sum(s.tokens_out for s in mine),
            }
        )
    return rows


def _session_row(agent: str, s: SessionSummary, kind: str) -> dict[str, Any]:
    return {
        "agent": agent,
        "session_id": s.id,
        "workflow": s.workflow,
        "principal": s.principal,
        "trouble": kind,
        "status": s.status,
        "loops": s.loops,
        "tool_calls": s.tool_calls,
        "retries": s.retries,
        "unauthorized_attempts": s.unauthorized_attempts,
        "tokens_in": s.tokens_in,
        "tokens_out": s.tokens_out,
        "cost_usd": round(s.cost_usd, 4),
        "flags": sorted({f.kind for f in s.flags}),
        "killed_by": s.killed.operator if s.killed else None,
    }


def _detection_row(d: Detection, planned: dict[str, FleetNote], started: float) -> dict[str, Any]:
    note = planned.get(d.session_id or "")
    return {
        "kind": d.kind,
        "agent": d.agent,
        "session_id": d.session_id,
        "workflow": d.workflow,
        "trouble": note.trouble if note else None,
        "message": d.message,
        "raised_s": round(d.raised_at - started, 3),
        "seen_s": round(d.seen_at - started, 3),
        "latency_ms": d.latency_ms,
        "since_session_start_s": round(d.raised_at - note.at, 3) if note else None,
    }


def _trouble_rows(
    notes: list[FleetNote], sessions: list[tuple[str, SessionSummary]], started: float
) -> list[dict[str, Any]]:
    final = {s.id: s for _, s in sessions}
    rows = []
    for note in notes:
        if note.trouble is None or note.kind not in ("session_planned", "agent_down"):
            continue
        summary = final.get(note.session_id or "")
        rows.append(
            {
                "kind": note.trouble,
                "agent": note.agent,
                "scenario_s": note.scenario_s,
                "at_s": round(note.at - started, 3),
                "session_id": note.session_id,
                "status": summary.status if summary else None,
                "flags": sorted({f.kind for f in summary.flags}) if summary else [],
            }
        )
    return rows


def _not_reached(fleet: Fleet) -> list[dict[str, Any]]:
    """Scripted trouble the run ended before (a short --duration): said, not left out."""
    if fleet.until_s is None:
        return []
    return [
        {"kind": t.kind, "agent": t.agent, "scenario_s": t.at_s}
        for t in fleet.scenario.model.trouble
        if t.at_s >= fleet.until_s
    ]


def _outages(
    notes: list[FleetNote], reach: list[Reachability], started: float
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for note in notes:
        if note.kind != "agent_down":
            continue
        seen_down = next(
            (r for r in reach if r.agent == note.agent and not r.reachable and r.at >= note.at),
            None,
        )
        up = next(
            (
                n
                for n in notes
                if n.agent == note.agent and n.kind == "agent_up" and n.at >= note.at
            ),
            None,
        )
        seen_up = None
        if up is not None:
            seen_up = next(
                (r for r in reach if r.agent == note.agent and r.reachable and r.at >= up.at), None
            )
        rows.append(
            {
                "agent": note.agent,
                "down_s": round(note.at - started, 3),
                "seen_down_s": round(seen_down.at - started, 3) if seen_down else None,
                "up_s": round(up.at - started, 3) if up else None,
                "seen_up_s": round(seen_up.at - started, 3) if seen_up else None,
            }
        )
    return rows


def _action_row(action: Action, started: float) -> dict[str, Any]:
    row = asdict(action)
    for key in ("event_at", "seen_at", "done_at"):
        row[key.replace("_at", "_s")] = round(row.pop(key) - started, 3)
    row["response_ms"] = round((action.done_at - action.event_at) * 1000, 1)
    return row


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


# -- the readable version ------------------------------------------------------------------
def render_text(report: dict[str, Any]) -> str:
    """A plain table for a terminal. Agent-supplied text is shown with control chars escaped."""
    lines = [
        f"scenario {report['scenario']}  seed {report['seed']}  speed {report['speed']}x  "
        f"ran {report['duration_s']}s ({report['scenario_s']} scenario s)"
        f"  auto-respond {'on' if report['auto_respond'] else 'off'}",
        f"first live session seen after {report['first_session_seen_s']}s; "
        f"{report['events_seen']} events streamed",
        "",
        "AGENTS",
    ]
    lines += _table(
        ["agent", "version", "tenant", "up", "restarts", "sessions", "cost $", "tokens in"],
        [
            [
                a["agent"],
                a["version"],
                a["tenant"],
                "yes" if a["up"] else "NO",
                a["restarts"],
                a["sessions"],
                f"{a['cost_usd']:.4f}",
                a["tokens_in"],
            ]
            for a in report["agents"]
        ],
    )
    s = report["sessions"]
    statuses = ", ".join(f"{k} {v}" for k, v in sorted(s["by_status"].items()))
    lines += [
        "",
        f"SESSIONS  {s['total']} total ({statuses}); refused at the door "
        f"{s['refused']}, dropped {s['dropped']}",
    ]
    lines += ["", "TROUBLE (scripted)"]
    lines += _table(
        ["at s", "kind", "agent", "session", "status", "flags"],
        [
            [
                t["at_s"],
                t["kind"],
                t["agent"],
                t["session_id"] or "-",
                t["status"] or "-",
                ",".join(t["flags"]) or "-",
            ]
            for t in report["trouble"]
        ],
    )
    for t in report.get("not_reached", []):
        lines.append(
            f"  not reached: {t['kind']} on {_plain(t['agent'])} at {t['scenario_s']} scenario s"
            " (the run ended first; a longer --duration plays it)"
        )
    lines += ["", "DETECTIONS (raised -> seen over the endpoint)"]
    lines += _table(
        ["raised s", "latency ms", "flag", "agent", "session", "message"],
        [
            [
                d["raised_s"],
                d["latency_ms"],
                d["kind"],
                d["agent"],
                d["session_id"] or "-",
                _plain(d["message"])[:70],
            ]
            for d in report["detections"]
            if d["kind"] in TROUBLE_FLAGS
        ],
    )
    lat = report["detection_latency_ms"]
    lines += [f"detection latency: median {lat['median']} ms, max {lat['max']} ms"]
    if report["outages"]:
        lines += ["", "OUTAGES"]
        lines += _table(
            ["agent", "down s", "seen down s", "up s", "seen up s"],
            [
                [o["agent"], o["down_s"], o["seen_down_s"], o["up_s"], o["seen_up_s"]]
                for o in report["outages"]
            ],
        )
    lines += _watch_lines(report)
    lines += ["", "ACTIONS"]
    if report["actions"]:
        lines += _table(
            ["done s", "response ms", "action", "agent", "target", "result", "trigger"],
            [
                [
                    a["done_s"],
                    a["response_ms"],
                    a["kind"],
                    a["agent"],
                    _plain(a["target"]),
                    _plain(a["result"])[:40],
                    _plain(a["trigger"]),
                ]
                for a in report["actions"]
            ],
        )
    else:
        lines.append("none (run with --auto-respond to let the demo play the operator)")
    return "\n".join(lines) + "\n"


def _watch_lines(report: dict[str, Any]) -> list[str]:
    watch = report.get("watch")
    if watch is None:
        return []
    incidents = report["incidents"]
    opened = "; ".join(
        f"{i['cause']} on {_plain(i['agent'])} (MTTD {i['mttd_s']} s)" for i in incidents
    )
    lines = [
        "",
        "WATCHER (agentops watch, in process)",
        f"recorded: {report['recorded']} sessions in {watch['records']}"
        + (f" ({watch['lost']} lost)" if watch["lost"] else ""),
        f"incidents: {len(incidents)} opened" + (f": {opened}" if opened else ""),
        f"pages: {report['pages']} delivered to {watch['pages_file']}"
        + (f" ({watch['pages_failed']} not delivered)" if watch["pages_failed"] else ""),
    ]
    if watch["error"]:
        lines.append(f"watcher error: {_plain(watch['error'])}")
    return lines


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    cells = [header, *[[_plain(str(c)) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    out = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    if not rows:
        out.append("(none)")
    return out


def _plain(text: str) -> str:
    """Untrusted text for a terminal: control characters become visible escapes."""
    return clean(text, None)
