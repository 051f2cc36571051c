"""Getting notices out: one bounded queue and one asyncio task per sink.

`Notifier.publish()` never waits: it puts the notice on each sink's queue and returns, so
recording and incident handling in the watcher go on whatever the sinks do. Each sink's
task delivers its queue in order (a resolve never overtakes its trigger), with a hard
per-attempt deadline, retries with exponential backoff and jitter on timeouts, transport
errors, 429 and 5xx, and none on other 4xx (the request itself is wrong; resending it
cannot help). A full queue drops the new notice and counts it; memory stays bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from ...protocol.client import tls_for
from .notice import Notice
from .spec import Sink

log = logging.getLogger("agentops.watch.sinks")

USER_AGENT = "agentops-watch/1"


@dataclass(slots=True)
class SinkCounters:
    """What the watcher's health report shows per sink."""

    sent: int = 0  # delivered (2xx)
    failed: int = 0  # given up: a 4xx other than 429, or every attempt failed
    retried: int = 0  # attempts after the first
    dropped: int = 0  # never attempted: the queue was full, or the watcher stopped
    filtered: int = 0  # below the sink's min_severity
    queued: int = 0  # waiting now
    last_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class _Attempt:
    ok: bool
    retryable: bool = False
    error: str = ""
    retry_after_s: float | None = None


class _SinkWorker:
    def __init__(
        self,
        sink: Sink,
        draw: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self.sink = sink
        self.counters = SinkCounters()
        self.queue: asyncio.Queue[Notice] = asyncio.Queue(maxsize=sink.queue_size)
        self._draw = draw
        self._sleep = sleep
        self._busy = False
        self._http = httpx.AsyncClient(
            headers={"User-Agent": USER_AGENT, **sink.headers},
            timeout=httpx.Timeout(sink.retry.timeout_s),
            follow_redirects=False,
            verify=tls_for(sink.url),  # no CA bundle per sink for http://
        )
        self.task: asyncio.Task[None] | None = None

    def offer(self, notice: Notice) -> bool:
        if not self.sink.wants(notice):
            self.counters.filtered += 1
            return False
        try:
            self.queue.put_nowait(notice)
        except asyncio.QueueFull:
            self.counters.dropped += 1
            self.counters.last_error = f"queue full ({self.sink.queue_size}), notice dropped"
            log.warning("sink %s: queue full, dropped %s", self.sink.name, notice.dedup_key)
            return False
        return True

    @property
    def idle(self) -> bool:
        return self.queue.empty() and not self._busy

    async def run(self) -> None:
        while True:
            notice = await self.queue.get()
            self._busy = True
            try:
                await self._deliver(notice)
            finally:
                self._busy = False
                self.queue.task_done()

    async def _deliver(self, notice: Notice) -> None:
        body = self.sink.render(notice)
        policy = self.sink.retry
        for attempt in range(1, policy.max_attempts + 1):
            result = await self._attempt(body)
            if result.ok:
                self.counters.sent += 1
                return
            self.counters.last_error = result.error
            if not result.retryable or attempt == policy.max_attempts:
                self.counters.failed += 1
                log.warning(
                    "sink %s: %s not delivered after %d attempt(s): %s",
                    self.sink.name,
                    notice.dedup_key,
                    attempt,
                    result.error,
                )
                return
            self.counters.retried += 1
            delay = policy.delay(attempt, self._draw())
            if result.retry_after_s is not None:
                delay = max(delay, min(result.retry_after_s, policy.backoff_max_s))
            await self._sleep(delay)

    async def _attempt(self, body: dict[str, Any]) -> _Attempt:
        if self.sink.path is not None:
            return await _append(self.sink.path, body)
        timeout = self.sink.retry.timeout_s
        try:
            async with asyncio.timeout(timeout):
                response = await self._http.post(self.sink.url, json=body)
        except (TimeoutError, httpx.TimeoutException):
            return _Attempt(False, True, f"no answer within {timeout:g} s")
        except httpx.HTTPError as exc:
            # The exception text never carries the URL (a Slack URL is a secret).
            return _Attempt(False, True, f"{type(exc).__name__}: {exc}"[:200])
        status = response.status_code
        if response.is_success:
            return _Attempt(True)
        error = f"HTTP {status}"
        if status == 429 or status >= 500:
            return _Attempt(False, True, error, _retry_after(response))
        return _Attempt(False, False, error)

    async def aclose(self) -> None:
        in_flight = self._busy  # read before cancelling: the task's `finally` clears it
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        abandoned = int(in_flight)
        while not self.queue.empty():
            self.queue.get_nowait()
            abandoned += 1
        self.counters.dropped += abandoned
        await self._http.aclose()


async def _append(path: Path, body: dict[str, Any]) -> _Attempt:
    """A `file` sink: one JSON line per notice, appended in one write (no fsync: a page
    file is a local convenience, not a ledger)."""
    line = json.dumps(body, ensure_ascii=False, separators=(",", ":")) + "\n"
    try:
        await asyncio.to_thread(_append_line, path, line)
    except OSError as exc:
        return _Attempt(False, True, f"cannot write {path.name}: {exc.strerror or exc}"[:200])
    return _Attempt(True)


def _append_line(path: Path, line: str) -> None:
    with path.open("a", encoding="utf-8") as out:
        out.write(line)


def _retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds (the HTTP-date form is ignored: backoff applies)."""
    value = response.headers.get("Retry-After", "")
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


class Notifier:
    """All sinks of one watcher. Create, `start()` (or `async with`) inside the event loop."""

    def __init__(
        self,
        sinks: Sequence[Sink],
        *,
        draw: Callable[[], float] = random.random,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._workers = [_SinkWorker(sink, draw, sleep) for sink in sinks]

    async def __aenter__(self) -> Notifier:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def start(self) -> None:
        for worker in self._workers:
            if worker.task is None:
                worker.task = asyncio.create_task(
                    worker.run(), name=f"agentops-watch-sink-{worker.sink.name}"
                )

    def publish(self, notice: Notice) -> int:
        """Queue `notice` for every sink that wants it; never waits. Returns how many."""
        return sum(worker.offer(notice) for worker in self._workers)

    def counters(self) -> dict[str, SinkCounters]:
        """A snapshot per sink name, for the health report."""
        snapshot: dict[str, SinkCounters] = {}
        for worker in self._workers:
            counters = SinkCounters(**worker.counters.as_dict())
            counters.queued = worker.queue.qsize()
            snapshot[worker.sink.name] = counters
        return snapshot

    async def drain(self, timeout_s: float) -> bool:
        """Wait until every queue is delivered (or given up on); False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not all(worker.idle for worker in self._workers):
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    async def aclose(self, drain_s: float = 0.0) -> None:
        """Stop the sinks; what is still queued after `drain_s` counts as dropped."""
        if drain_s > 0:
            await self.drain(drain_s)
        for worker in self._workers:
            await worker.aclose()
