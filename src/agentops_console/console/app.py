"""`AgentOpsConsole`: the Textual app that watches the fleet and acts on it.

Connections write into the store from their workers (one named group per agent, errors
kept inside the worker); a timer redraws only the visible view from what changed, inside
`batch_update()`, so screen work is bounded by the redraw rate, not the event rate.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import ClassVar

from textual import events
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.notifications import SeverityLevel
from textual.screen import Screen

from ..protocol.client import AsyncAgentClient, EndpointError
from ..protocol.models import SessionDetail
from .actions import ActionResult, ActionRunner
from .connection import AgentConnection, AgentSource, Backoff
from .gc_pacing import GcPacer
from .governance_port import GovernancePort
from .history import LoadedDetail, RecordsReader, detail_from_record
from .ingest import Ingest
from .messages import ActionDone, AgentLive, AgentStale
from .screens.base import MUTATING_ACTIONS, ConsoleScreen
from .screens.detail import DetailScreen
from .screens.info import VIEWS, HelpModal, JumpModal
from .screens.views import AlertsScreen, ApprovalsScreen, FleetScreen, SessionsScreen
from .store import Clock, FleetStore, SessionKey, utc_now
from .text import clean, cut, sanitized

DetailLoader = Callable[[SessionKey], Awaitable[SessionDetail]]


class AgentOpsConsole(App[None]):
    #: Absolute, so a subclass defined in another module still finds the stylesheet.
    CSS_PATH = Path(__file__).parent / "console.tcss"
    TITLE = "agentops console"
    ENABLE_COMMAND_PALETTE = True
    MODES: ClassVar[dict[str, str | Callable[[], Screen[None]]]] = {
        "fleet": FleetScreen,
        "sessions": SessionsScreen,
        "alerts": AlertsScreen,
        "approvals": ApprovalsScreen,
    }
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark", "help", "Help", id="app.help"),
        Binding("colon", "jump", "Jump", id="app.jump"),
        Binding("p", "pause", "Pause", id="app.pause"),
        Binding("1", "view('fleet')", "Fleet", show=False, id="view.fleet"),
        Binding("2", "view('sessions')", "Sessions", show=False, id="view.sessions"),
        Binding("3", "view('alerts')", "Alerts", show=False, id="view.alerts"),
        Binding("4", "view('approvals')", "Approvals", show=False, id="view.approvals"),
        Binding("q", "quit", "Quit", id="app.quit"),
        # Terminal habit: Ctrl-C ends the console (Textual alone treats it as copy).
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True, id="app.interrupt"),
    ]

    def __init__(
        self,
        sources: Sequence[AgentSource] = (),
        *,
        governance: GovernancePort | None = None,
        operator: str = "unknown",
        readonly: bool = False,
        clock: Clock = utc_now,
        store: FleetStore | None = None,
        keymap: dict[str, str] | None = None,
        refresh_s: float = 0.25,
        backoff: Backoff | None = None,
        detail_loader: DetailLoader | None = None,
        start_view: str = "fleet",
        records: RecordsReader | None = None,
        readonly_reason: str = "",
        pace_gc: bool = True,
        ingest: Ingest | None = None,
    ) -> None:
        super().__init__()
        self.sources = list(sources)
        self.governance = governance
        #: shown in the status bar and every modal, so clean like agent data
        self.operator = clean(operator, 200)
        #: Without a governance DB nothing could be audited, so nothing may be changed.
        self.readonly = readonly or governance is None
        #: Why actions are off although --readonly was not asked for: the header says it.
        self.readonly_reason = ""
        if self.readonly and not readonly:
            self.readonly_reason = readonly_reason or "no governance DB, so no audit log"
        self.clock = clock
        self.store = store or FleetStore(clock)
        self.refresh_s = refresh_s
        self.backoff = backoff
        self.detail_loader = detail_loader
        self.start_view = start_view
        #: Sessions the agents no longer hold, read-only (console/history.py).
        self.records = records
        self.paused = False
        self.last_note = ""
        self.results: list[ActionResult] = []
        self.clients: dict[str, AsyncAgentClient] = {}
        self.connections: dict[str, AgentConnection] = {}
        self.actions: ActionRunner | None = None
        self._history: list[str] = []
        self._keymap = dict(keymap or {})
        #: Full garbage collections only while the operator is idle (console/gc_pacing.py).
        self.gc_pacer = GcPacer() if pace_gc else None
        #: every agent's events go through one queue, applied under a time budget per
        #: slice, so a backlog never holds a key press (console/ingest.py)
        self.ingest = ingest or Ingest(self.store)
        for source in self.sources:
            self.store.add_agent(source.key, source.url)

    # -- lifecycle -------------------------------------------------------------------
    def on_mount(self) -> None:
        if self.gc_pacer is not None:
            self.gc_pacer.start()
        if self._keymap:
            self.set_keymap(self._keymap)
        # a failure here is a bug: end loudly rather than freeze every row unmarked
        self.run_worker(self.ingest.run(), name="ingest", group="ingest")
        for source in self.sources:
            client = AsyncAgentClient(source.url, source.resolve_token())
            self.clients[source.key] = client
            conn = AgentConnection(
                source,
                self.store,
                self.post_message,
                client,
                backoff=self.backoff,
                ingest=self.ingest,
            )
            self.connections[source.key] = conn
            self.run_worker(
                conn.run(),
                name=f"agent:{source.key}",
                group=f"agent:{source.key}",
                description=f"feed of {source.url}",
                exit_on_error=False,
            )
        if not self.readonly and self.governance is not None:
            lookup = self.records.lookup if self.records is not None else None
            self.actions = ActionRunner(self.clients, self.governance, self.operator, lookup)
        # Every view is composed now, before the first frame, so the first `1`-`4` press
        # does not pay for composing a screen and parsing its widgets' CSS (150-250 ms).
        for view in VIEWS:
            if view != self.start_view:
                self.switch_mode(view)
        self.switch_mode(self.start_view)
        self.set_interval(self.refresh_s, self.flush)

    async def on_unmount(self) -> None:
        if self.gc_pacer is not None:
            self.gc_pacer.stop()
        self.workers.cancel_all()
        for client in self.clients.values():
            await client.aclose()

    # -- drawing ---------------------------------------------------------------------
    def view_screen(self) -> ConsoleScreen | None:
        """The view under any modal: the one the operator is looking at."""
        for screen in reversed(self.screen_stack):
            if isinstance(screen, ConsoleScreen):
                return screen
        return None

    def flush(self) -> None:
        screen = self.view_screen()
        if screen is None or not screen.is_mounted:
            return
        try:
            with self.batch_update():
                if self.paused:
                    screen.refresh_status()
                else:
                    # every tick in every view, so a switch to the sessions view or a
                    # sort never waits for the orders to catch up
                    self.store.settle_orders()
                    screen.refresh_view()
                    self.store.mark_alerts_displayed(self.clock())
        except NoMatches:
            # the timer can tick while a screen is composing or being torn down (at quit)
            # with its widgets not there; the tables sync from the store on the next tick
            return
        if self.gc_pacer is not None:
            self.gc_pacer.tick()

    async def on_event(self, event: events.Event) -> None:
        if self.gc_pacer is not None and isinstance(event, events.InputEvent):
            self.gc_pacer.input_seen()  # the operator is busy: no full collection now
        await super().on_event(event)

    def delay_update(self, delay: float = 0.05) -> None:
        """Textual holds the screen for 50 ms after every mode switch, to hide a view
        still composing: every view here is composed at mount (see `on_mount`), so a
        view key draws its view on the next frame (the hold was most of a `1`-`4`). The
        1 ms left lets the new view take its resume (restyle, refresh from the store)
        before its first frame; a zero-length timer would never fire."""
        super().delay_update(0.001)

    # -- navigation ------------------------------------------------------------------
    def action_view(self, view: str) -> None:
        if view not in VIEWS:
            return
        if self.current_mode != view:
            self._history.append(self.current_mode)
            self.switch_mode(view)

    def go_back(self) -> None:
        if len(self.screen_stack) > 1:
            self.pop_screen()
        elif self._history:
            self.switch_mode(self._history.pop())

    def show_sessions(self, agent: str | None = None) -> None:
        self.action_view("sessions")
        if agent is not None:
            self.call_later(self._filter_sessions, agent)

    def _filter_sessions(self, agent: str) -> None:
        screen = self.view_screen()
        if isinstance(screen, SessionsScreen):
            screen.set_filter(agent)

    def show_detail(self, key: SessionKey) -> None:
        self.push_screen(DetailScreen(key))

    def action_jump(self) -> None:
        def chosen(view: str | None) -> None:
            if view is not None:
                self.action_view(view)

        self.push_screen(JumpModal(), chosen)

    def action_pause(self) -> None:
        self.paused = not self.paused
        self.last_note = "display paused (data keeps arriving)" if self.paused else ""
        self.flush()

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Every toast, the screens' and widgets' too, comes through here: toasts carry
        agent names, workflows and errors, so they are never parsed as markup (an
        unmatched `[/]` would close the app)."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)

    def action_help(self) -> None:
        screen = self.screen
        active = [a.binding for a in screen.active_bindings.values() if a.enabled]
        # a focused table's own key (enter) hides the screen's binding for it, though the
        # screen still acts on that key: list the screen's own bindings too
        own = [
            b
            for b in screen.BINDINGS
            if isinstance(b, Binding) and screen.check_action(b.action, ()) is True
        ]
        by_id: dict[str, tuple[str, str, str]] = {}
        for binding in active + own:
            if binding.id and binding.id not in by_id:
                key = self.get_key_display(binding)
                by_id[binding.id] = (key, binding.description or binding.action, binding.id)
        rows = sorted(by_id.values(), key=lambda r: r[2])
        self.push_screen(HelpModal(rows))

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for view in VIEWS:
            yield SystemCommand(
                f"Go to {view}", f"Show the {view} view", partial(self.action_view, view)
            )
        yield SystemCommand("Pause / resume", "Freeze the display", self.action_pause)
        view_screen = self.view_screen()
        if view_screen is None or self.readonly:
            return
        for binding in view_screen.BINDINGS:
            if isinstance(binding, Binding) and binding.action in MUTATING_ACTIONS:
                yield SystemCommand(
                    binding.description,
                    f"{binding.description} (key {binding.key}) on the selected row",
                    partial(view_screen.run_action, binding.action),
                )

    # -- actions ---------------------------------------------------------------------
    def perform(self, work: Awaitable[ActionResult]) -> None:
        """Run an operator action in the background; its result lands in a toast."""
        self.run_worker(self._act(work), group="actions", exit_on_error=False)

    async def _act(self, work: Awaitable[ActionResult]) -> None:
        result = await work
        self.results.append(result)
        self.last_note = result.message
        self.notify(result.message, severity="information" if result.ok else "error")
        self.post_message(ActionDone(result.ok, result.message))
        self.flush()

    async def load_detail(self, key: SessionKey) -> SessionDetail:
        """A session's spans, cleaned here: like the store, the one way in for them."""
        return (await self.fetch_detail(key)).detail

    async def fetch_detail(self, key: SessionKey) -> LoadedDetail:
        """Live from the agent; when it no longer has the session (or does not answer),
        the recorded copy from the records DB. Cleaned here, like everything shown."""
        agent = self.store.agent_name(key[0])
        if self.detail_loader is not None:
            return LoadedDetail(sanitized(await self.detail_loader(key)), "live", agent)
        try:
            live = await self.clients[key[0]].session(key[1])
            return LoadedDetail(sanitized(live), "live", agent)
        except EndpointError as exc:
            if self.records is None:
                raise
            from ..records.errors import RecordsProblem

            try:
                found = await asyncio.to_thread(self.records.get, agent, key[1])
            except RecordsProblem as problem:
                raise EndpointError(f"{exc}; records: {problem}", exc.status) from None
            if found is None:
                raise EndpointError(f"{exc}; not in the records DB either", exc.status) from None
        detail = sanitized(detail_from_record(found.record))
        return LoadedDetail(detail, "records", agent, clean(found.recorded_at, 40))

    # -- connection news -------------------------------------------------------------
    def on_agent_stale(self, message: AgentStale) -> None:
        name = self.store.agent_name(message.source)
        why = message.error
        if not why.startswith("unauthorized"):  # a refused token is not "unreachable"
            why = f"unreachable ({why})"
        self.last_note = f"{name} {why}; retry {message.retries} in {message.retry_in_s:.1f}s"
        if message.retries == 1:
            self.notify(cut(self.last_note, 200), severity="warning")

    def on_agent_live(self, message: AgentLive) -> None:
        if message.snapshot in ("restart", "gap", "resumed"):
            name = self.store.agent_name(message.source)
            self.last_note = f"{name} back ({message.snapshot})"

    def on_action_done(self, message: ActionDone) -> None:
        """Handled by `_act`; listed so tests and plugins can wait on it."""
