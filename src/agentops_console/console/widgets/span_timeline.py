"""A session's spans in order, with provenance: tool, arguments (JSON), principal,
policy decision, latency, tokens and cost."""

from __future__ import annotations

from ...protocol.models import SessionDetail, Span
from .. import format as fmt
from ..text import json_text
from .keyed_table import KeyedTable, RowSpec

OUTCOME_STYLE = {
    "ok": "green",
    "running": "yellow",
    "error": "red",
    "denied": "bold red",
    "killed": "bold red",
    "budget_exceeded": "magenta",
    "timeout": "red",
}


def span_row(span: Span, detail: SessionDetail) -> RowSpec:
    offset = (span.started_at - detail.started_at).total_seconds()
    decision: str = span.policy.decision if span.policy is not None else "-"
    if span.policy is not None and span.policy.reasons:
        decision += f" ({', '.join(span.policy.reasons)})"
    what = span.tool or span.model or span.name
    # tool and retrieval calls alike: the repeated query is what an operator looks for
    args = json_text(span.arguments, 80) if span.arguments is not None else ""
    tokens = fmt.tokens(
        span.tokens_in,
        span.tokens_out,
        span.tokens_cache_read,
        span.tokens_cache_write,
        span.tokens_reasoning,
    )
    return [
        # signed: an LLM call reported with its latency began before the session did
        (f"{offset:+.3f}s", "dim", (offset, span.id)),
        (str(span.loop), "", span.loop),
        (span.kind, "", span.kind),
        (what, "bold", what),
        (args, "", args),
        (span.principal or "-", "", span.principal or ""),
        (decision, "red" if decision.startswith("deny") else "", decision),
        (span.outcome, OUTCOME_STYLE.get(span.outcome, ""), span.outcome),
        (fmt.millis(span.latency_ms), "", span.latency_ms or 0.0),
        (tokens, "", span.tokens_in + span.tokens_out),
        (fmt.usd(span.cost_usd) if span.cost_usd else "", "", span.cost_usd),
    ]


class SpanTimeline(KeyedTable):
    COLUMNS = (
        ("at", "at"),
        ("loop", "loop"),
        ("kind", "kind"),
        ("what", "tool / model"),
        ("arguments", "arguments"),
        ("principal", "principal"),
        ("policy", "policy decision"),
        ("outcome", "outcome"),
        ("latency", "latency"),
        ("tokens", "tokens"),
        ("cost", "cost"),
    )
    TIEBREAK = "at"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.sort_by = "at"
        self._detail: SessionDetail | None = None

    def show(self, detail: SessionDetail | None) -> None:
        """The session's spans that pass the `/` filter (the last detail when None)."""
        self._detail = detail = detail or self._detail
        if detail is None:
            return
        keep = self.current_key()
        rows = {span.id: span_row(span, detail) for span in detail.spans}
        rows = {key: row for key, row in rows.items() if self.matches(row)}
        for gone in self.shown_keys() - set(rows):
            self.drop(gone)
        for key, row in rows.items():
            self.upsert(key, row)
        self.finish(keep)

    def selected_span(self) -> str | None:
        return self.current_key()
