"""Follow every agent's event stream over HTTP, as an operator's console would.

The headless demo must see the fleet from the outside, through the endpoint and the
protocol client, so that its detection times (event raised -> event seen) measure the
same path the console depends on. One thread per agent: snapshot, then stream from
`Last-Event-ID`, reconnecting while the agent is down and starting over from sequence 0
when it comes back as a new process.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from ..protocol.client import AgentClient, EndpointError
from ..protocol.models import Event
from .fleet import Endpoint

#: Pause between reconnect attempts to an agent that does not answer.
RECONNECT_S = 0.1


@dataclass(frozen=True, slots=True)
class Seen:
    agent: str
    event: Event
    seen_at: float  # epoch seconds when the watcher received it


@dataclass(frozen=True, slots=True)
class Reachability:
    """The watcher lost or regained an agent."""

    agent: str
    reachable: bool
    at: float
    detail: str = ""


Listener = Callable[[Seen], None]
ReachListener = Callable[[Reachability], None]


class Watcher:
    """Streams events from every endpoint to listeners; `stop()` after the fleet stops."""

    def __init__(
        self,
        endpoints: Sequence[Endpoint],
        listeners: Sequence[Listener] = (),
        on_reach: Sequence[ReachListener] = (),
    ) -> None:
        self.endpoints = list(endpoints)
        self.listeners = list(listeners)
        self.on_reach = list(on_reach)
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._clients: dict[str, AgentClient] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        for endpoint in self.endpoints:
            thread = threading.Thread(
                target=self._follow,
                args=(endpoint,),
                name=f"agentops-demo-watch:{endpoint.agent}",
                daemon=True,
            )
            self._threads.append(thread)
            thread.start()

    def halt(self) -> None:
        """Stop reconnecting (call before the fleet stops, so its shutdown is no outage)."""
        self._stop.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop following. Streams end when their endpoint closes; open ones are cut here."""
        self._stop.set()
        with self._lock:
            clients = list(self._clients.values())
        for client in clients:
            with contextlib.suppress(Exception):
                client.close()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _follow(self, endpoint: Endpoint) -> None:
        last = 0
        started: datetime | None = None
        reachable: bool | None = None
        while not self._stop.is_set():
            try:
                with AgentClient(endpoint.url, endpoint.token) as client:
                    with self._lock:
                        self._clients[endpoint.agent] = client
                    info = client.agent()
                    if started is not None and info.started_at != started:
                        last = 0  # a new process: its sequence starts over
                    started = info.started_at
                    if reachable is not True:
                        reachable = True
                        self._reach(Reachability(endpoint.agent, True, time.time()))
                    for event in client.events(last_event_id=last):
                        last = event.seq
                        self._deliver(Seen(endpoint.agent, event, time.time()))
            except EndpointError as exc:
                if reachable is not False and not self._stop.is_set():
                    reachable = False
                    self._reach(Reachability(endpoint.agent, False, time.time(), str(exc)))
            finally:
                with self._lock:
                    self._clients.pop(endpoint.agent, None)
            if reachable and not self._stop.is_set():
                # The stream ended without an error: the endpoint closed it (it is stopping).
                reachable = None
            self._stop.wait(RECONNECT_S)

    def _deliver(self, seen: Seen) -> None:
        for listener in self.listeners:
            try:
                listener(seen)
            except Exception as exc:  # a listener's bug must not blind the watcher
                self.errors.append(f"{type(exc).__name__}: {exc}")

    def _reach(self, change: Reachability) -> None:
        for listener in self.on_reach:
            try:
                listener(change)
            except Exception as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
