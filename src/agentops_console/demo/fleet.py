"""The simulated fleet: one real Runtime and endpoint per agent, driven by the script.

Each agent gets its own Runtime serving the real agentops/1 endpoint on a loopback port
chosen by the OS, with a token made fresh for this run (or, when set, taken from the
variable the registry names for it, so `agentops disable ...` can reach the demo too).
A scheduler thread releases the planned sessions at their (speed-scaled) times, each on
its own thread, because a session waiting for a human approval must not hold up the rest
of the fleet. An outage stops an agent's Runtime like a crashed process and later starts
a new one on the same port. `stop()` ends every session, endpoint and thread it started.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from ..runtime import Runtime, RuntimeConfig, ToolSpec
from .play import Pace, play_session
from .scenario import Agent, Scenario, Tool
from .script import OutagePlan, PlanItem, SessionPlan, plan

#: How long a restart keeps trying to bind the agent's old port.
_REBIND_S = 2.0


def token_env(agent: str) -> str:
    """The variable the registry names for an agent's token; a real deployment sets it."""
    return "AGENTOPS_TOKEN_" + "".join(c if c.isalnum() else "_" for c in agent.upper())


def _token(agent: str) -> str:
    return os.environ.get(token_env(agent)) or secrets.token_urlsafe(24)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where an agent answers. The token stays out of repr, logs and reports."""

    agent: str
    url: str
    token: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class FleetNote:
    """Something the fleet did (as opposed to something an agent reported)."""

    at: float  # epoch seconds
    kind: str  # session_planned, session_dropped, agent_down, agent_up, restart_failed
    agent: str
    detail: str = ""
    scenario_s: float | None = None
    session_id: str | None = None
    trouble: str | None = None


@dataclass(slots=True)
class _Generation:
    """One incarnation of an agent process: its Runtime and the sessions it runs."""

    runtime: Runtime
    halt: threading.Event = field(default_factory=threading.Event)
    ordinary_running: int = 0


@dataclass
class _AgentSlot:
    agent: Agent
    token: str
    port: int = 0
    current: _Generation | None = None
    generations: list[_Generation] = field(default_factory=list)


class Fleet:
    """Start with `start()`, release traffic with `run()`, end everything with `stop()`."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        seed: int | None = None,
        speed: float = 1.0,
        until_s: float | None = None,
        on_note: Callable[[FleetNote], None] | None = None,
    ) -> None:
        if not speed > 0:
            raise ValueError("speed must be a positive number")
        self.scenario = scenario
        self.seed = scenario.model.scenario.seed if seed is None else seed
        self.speed = speed
        self.until_s = until_s
        self.notes: list[FleetNote] = []
        self.started_at: float | None = None
        self._on_note = on_note
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._slots = {
            agent.name: _AgentSlot(agent, _token(agent.name)) for agent in scenario.agents
        }
        self._sessions: set[threading.Thread] = set()
        self._scheduler: threading.Thread | None = None
        self._t0 = 0.0
        self._done = threading.Event()

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> list[Endpoint]:
        """Start every agent's Runtime and endpoint; no traffic yet."""
        try:
            for slot in self._slots.values():
                self._boot(slot)
        except BaseException:
            self.stop()
            raise
        return self.endpoints()

    def run(self) -> None:
        """Release the planned traffic in the background, starting now."""
        if self._scheduler is not None:
            return
        self._t0 = time.monotonic()
        self.started_at = time.time()
        self._scheduler = threading.Thread(
            target=self._schedule, name="agentops-demo-scheduler", daemon=True
        )
        self._scheduler.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the script has been played out (`until_s`) or `timeout` passes."""
        return self._done.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """End sessions, endpoints and threads; idempotent."""
        self._stop.set()
        if self._scheduler is not None:
            self._scheduler.join(timeout)
        with self._lock:
            generations = [g for s in self._slots.values() for g in s.generations]
            for slot in self._slots.values():
                slot.current = None
        for generation in generations:
            generation.halt.set()
        for generation in generations:
            generation.runtime.stop()
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                threads = list(self._sessions)
            if not threads:
                break
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))
            if time.monotonic() >= deadline:
                break
            with self._lock:
                self._sessions -= {t for t in threads if not t.is_alive()}

    def __enter__(self) -> Fleet:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what others read ------------------------------------------------------------
    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint(name, f"http://127.0.0.1:{slot.port}", slot.token)
            for name, slot in self._slots.items()
        ]

    def runtimes(self) -> Iterator[tuple[str, Runtime]]:
        """Every Runtime the fleet ran, old incarnations of restarted agents included."""
        with self._lock:
            pairs = [(n, g.runtime) for n, s in self._slots.items() for g in s.generations]
        yield from pairs

    def runtime(self, agent: str) -> Runtime | None:
        """The agent's Runtime now (None while it is down)."""
        slot = self._slots[agent]
        return None if slot.current is None else slot.current.runtime

    def scenario_time(self) -> float:
        return 0.0 if not self._t0 else (time.monotonic() - self._t0) * self.speed

    # -- agents ------------------------------------------------------------------------
    def _boot(self, slot: _AgentSlot) -> None:
        agent = slot.agent
        runtime = Runtime(
            agent=agent.name,
            version=agent.version,
            tenant=agent.tenant,
            token=slot.token,
            policy=self.scenario.policy_text(agent),
            config=RuntimeConfig(
                approval_timeout_s=self.scenario.model.scenario.approval_timeout_s / self.speed
            ),
            workflows=[w.name for w in agent.workflows],
            tools=[_spec(t) for t in agent.tools],
        )
        deadline = time.monotonic() + (_REBIND_S if slot.port else 0.0)
        while True:
            try:
                runtime.start(host="127.0.0.1", port=slot.port)
                break
            except OSError:
                if time.monotonic() >= deadline or self._stop.wait(0.05):
                    runtime.stop()
                    raise
        url = runtime.url
        assert url is not None
        slot.port = int(url.rsplit(":", 1)[1])
        generation = _Generation(runtime)
        with self._lock:
            slot.generations.append(generation)
            slot.current = generation

    def _crash(self, slot: _AgentSlot) -> None:
        with self._lock:
            generation, slot.current = slot.current, None
        if generation is not None:
            generation.halt.set()
            generation.runtime.stop()

    # -- the scheduler -----------------------------------------------------------------
    def _schedule(self) -> None:
        restarts: list[tuple[float, int, str]] = []
        counter = itertools.count()
        items = plan(self.scenario, self.seed, self.until_s)
        pending: PlanItem | None = next(items, None)
        try:
            while not self._stop.is_set():
                due_plan = None if pending is None else pending.at_s / self.speed
                due_restart = restarts[0][0] if restarts else None
                if due_plan is None and due_restart is None:
                    break
                if due_restart is not None and (due_plan is None or due_restart <= due_plan):
                    if self._sleep_until(due_restart):
                        break
                    _, _, agent = heapq.heappop(restarts)
                    self._restart(agent)
                    continue
                if self._sleep_until(due_plan or 0.0):
                    break
                assert pending is not None
                if isinstance(pending, OutagePlan):
                    self._outage(pending, restarts, counter)
                else:
                    self._launch(pending)
                pending = next(items, None)
            if not self._stop.is_set():
                self._wait_sessions()
        finally:
            self._done.set()

    def _sleep_until(self, wall_offset: float) -> bool:
        delay = wall_offset - (time.monotonic() - self._t0)
        return self._stop.wait(delay) if delay > 0 else self._stop.is_set()

    def _wait_sessions(self) -> None:
        """With `until_s`, the script ends when its last session does."""
        while not self._stop.is_set():
            with self._lock:
                alive = [t for t in self._sessions if t.is_alive()]
            if not alive:
                return
            self._stop.wait(0.05)

    def _note(
        self,
        kind: str,
        agent: str,
        detail: str = "",
        *,
        scenario_s: float | None = None,
        session_id: str | None = None,
        trouble: str | None = None,
    ) -> None:
        note = FleetNote(time.time(), kind, agent, detail, scenario_s, session_id, trouble)
        with self._lock:
            self.notes.append(note)
        if self._on_note is not None:
            with contextlib.suppress(Exception):
                self._on_note(note)

    def _outage(
        self, item: OutagePlan, restarts: list[tuple[float, int, str]], counter: Iterator[int]
    ) -> None:
        slot = self._slots[item.agent]
        if slot.current is None:
            return
        self._crash(slot)
        self._note(
            "agent_down",
            item.agent,
            "endpoint stopped" + ("" if item.down_s else "; it stays down"),
            scenario_s=item.at_s,
            trouble="agent_outage",
        )
        if item.down_s is not None:
            due = (item.at_s + item.down_s) / self.speed
            heapq.heappush(restarts, (due, next(counter), item.agent))

    def _restart(self, agent: str) -> None:
        slot = self._slots[agent]
        try:
            self._boot(slot)
        except OSError as exc:
            self._note("restart_failed", agent, f"port {slot.port}: {exc.strerror or exc}")
            return
        self._note("agent_up", agent, f"endpoint back on port {slot.port}")

    def _launch(self, item: SessionPlan) -> None:
        slot = self._slots[item.agent]
        with self._lock:
            generation = slot.current
            if generation is None:
                dropped = "the agent is down"
            elif (
                item.kind == "ordinary" and generation.ordinary_running >= slot.agent.max_concurrent
            ):
                dropped = "the agent is busy"
            else:
                dropped = ""
                generation.ordinary_running += item.kind == "ordinary"
        if generation is None or dropped:
            self._note(
                "session_dropped",
                item.agent,
                dropped,
                scenario_s=item.at_s,
                session_id=item.session_id,
            )
            return
        trouble = None if item.kind == "ordinary" else item.kind
        self._note(
            "session_planned",
            item.agent,
            item.workflow,
            scenario_s=item.at_s,
            session_id=item.session_id,
            trouble=trouble,
        )
        thread = threading.Thread(
            target=self._play,
            args=(generation, item),
            name=f"agentops-demo-session:{item.agent}:{item.session_id}",
            daemon=True,
        )
        with self._lock:
            self._sessions.add(thread)
        thread.start()

    def _play(self, generation: _Generation, item: SessionPlan) -> None:
        try:
            outcome = play_session(generation.runtime, item, Pace(self.speed, generation.halt))
            if outcome == "refused":
                self._note(
                    "session_refused",
                    item.agent,
                    f"workflow {item.workflow} is disabled",
                    scenario_s=item.at_s,
                    session_id=item.session_id,
                    trouble=None if item.kind == "ordinary" else item.kind,
                )
        finally:
            with self._lock:
                generation.ordinary_running -= item.kind == "ordinary"
                self._sessions.discard(threading.current_thread())


def _spec(tool: Tool) -> ToolSpec:
    return ToolSpec(
        name=tool.name,
        version=tool.version,
        read_only=tool.read_only,
        customer_facing=tool.customer_facing,
        category=tool.category,
        corpus=tool.corpus,
        region=tool.region,
        args=dict(tool.args) if tool.args is not None else None,
        required=tuple(tool.required),
    )
