"""One session: its summary, the cost of each loop, and the span timeline."""

from __future__ import annotations

import time
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Static

from ...protocol.client import EndpointError
from ...protocol.models import SessionDetail, SessionSummary
from .. import format as fmt
from ..store import SessionKey
from ..text import cut, error_line
from ..widgets.footer import ConsoleFooter
from ..widgets.sessions_table import STATUS_STYLE
from ..widgets.span_timeline import SpanTimeline
from ..widgets.status_bar import StatusBar
from .base import ConsoleScreen

#: A busy session changes many times a second; its spans are refetched at most this often.
REFETCH_S = 1.0


def summary_text(summary: SessionSummary, stale: bool) -> Text:
    """The store's (clean) summary; `Text.append` never parses markup."""
    text = Text(no_wrap=False, end="")
    text.append("session ", style="bold")
    text.append(summary.id)
    text.append("  agent ", style="bold")
    text.append(summary.agent)
    text.append("  workflow ", style="bold")
    text.append(summary.workflow)
    text.append("  principal ", style="bold")
    text.append(summary.principal)
    text.append("  tenant ", style="bold")
    text.append(summary.tenant or "-")
    text.append("\nstatus ", style="bold")
    text.append(summary.status, style=STATUS_STYLE.get(summary.status, ""))
    if stale:
        text.append(" (stale: agent not answering)", style="bold red")
    limit = summary.budget.max_cost_usd_session
    text.append(
        f"  loops {summary.loops}  tool calls {summary.tool_calls}"
        f"  consecutive {summary.consecutive_tool_calls}  retries {summary.retries}"
        f"  tokens {summary.tokens_in}/{summary.tokens_out}"
        f"  cost {fmt.cost_vs_budget(summary.cost_usd, limit)}"
    )
    if summary.killed is not None:
        text.append("\nkilled by ", style="bold red")
        text.append(summary.killed.operator)
        text.append(": ")
        text.append(summary.killed.reason or "no reason given")
    for flag in summary.flags[-3:]:
        text.append("\nflag ", style="bold yellow")
        text.append(flag.kind, style="yellow")
        text.append(" ")
        text.append(cut(flag.message, 160))
    return text


def loops_text(detail: SessionDetail) -> Text:
    text = Text("cost per loop: ", style="bold", no_wrap=False, end="")
    if not detail.loop_costs:
        text.append("-", style="dim")
    for index, loop in enumerate(detail.loop_costs[-12:]):
        if index:
            text.append("  ")
        text.append(f"#{loop.loop} {fmt.usd(loop.cost_usd)} ({loop.tool_calls} tools)")
    split = fmt.cost_split(detail.cost_split.model_dump()) if detail.cost_split else ""
    if split:
        text.append("\ncost by part: ", style="bold")
        text.append(split)
        text.append(
            "  (tokens "
            + fmt.tokens(
                detail.tokens_in,
                detail.tokens_out,
                detail.tokens_cache_read,
                detail.tokens_cache_write,
                detail.tokens_reasoning,
            )
            + ")"
        )
    return text


class DetailScreen(ConsoleScreen):
    VIEW = "session"
    FILTER_HINT = "filter spans: words to match"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("k", "kill", "Kill", id="session.kill"),
        Binding("d", "disable", "Disable wf", id="workflow.disable"),
        Binding("e", "enable", "Enable wf", id="workflow.enable"),
        Binding("b", "budget", "Budget", id="budget.set"),
    ]

    def __init__(self, key: SessionKey) -> None:
        super().__init__()
        self.key = key
        self.detail: SessionDetail | None = None
        #: Where the detail came from: "live from <agent>" or "from records (recorded ...)".
        self.origin = ""
        self._fetched_at = 0.0
        self._wanted = True

    def compose(self) -> ComposeResult:
        yield StatusBar()
        yield self.compose_filter()
        yield Static(id="summary")
        yield Static(id="loops")
        yield SpanTimeline(id="spans")
        yield ConsoleFooter()

    def refresh_view(self) -> None:
        super().refresh_view()
        store = self.console.store
        summary = store.sessions.get(self.key)
        if self.changes is not None and self.key in self.changes.sessions:
            self.changes.take()
            self._wanted = True
        if summary is not None:
            self.query_one("#summary", Static).update(
                summary_text(summary, store.is_stale(self.key[0]))
            )
        now = time.monotonic()
        if self._wanted and now - self._fetched_at >= REFETCH_S:
            self._wanted = False
            self._fetched_at = now
            self.run_worker(self._fetch(), group="detail", exclusive=True, exit_on_error=False)

    async def _fetch(self) -> None:
        try:
            loaded = await self.console.fetch_detail(self.key)
        except EndpointError as exc:
            shown = Text(f"spans unavailable: {error_line(exc)}", "red")
            self.query_one("#loops", Static).update(shown)
            return
        detail = loaded.detail
        self.detail = detail
        self.origin = loaded.origin()
        if self._summary() is None:  # gone from the agent's ring: the recorded summary
            self.query_one("#summary", Static).update(summary_text(detail, False))
        style = "bold cyan" if loaded.source == "records" else "dim"
        shown = Text.assemble((self.origin, style), "\n", loops_text(detail))
        self.query_one("#loops", Static).update(shown)
        self.query_one(SpanTimeline).show(detail)

    def filter_changed(self, text: str) -> None:
        timeline = self.query_one(SpanTimeline)
        timeline.filter_text = text
        timeline.show(None)

    def _summary(self) -> SessionSummary | None:
        return self.console.store.sessions.get(self.key)

    def action_kill(self) -> None:
        self.flows.ask_kill(self.key)

    def action_disable(self) -> None:
        self._workflow(enable=False)

    def action_enable(self) -> None:
        self._workflow(enable=True)

    def _workflow(self, enable: bool) -> None:
        summary = self._summary()
        workflow = self.console.store.workflow_ref(self.key)
        if summary is not None and workflow is not None:
            self.flows.ask_workflow(self.key[0], workflow, summary.workflow, enable=enable)

    def action_budget(self) -> None:
        self.flows.ask_budget(self.key[0], self.key)
