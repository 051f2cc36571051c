"""Console under load: 20 agents, 5,000 live sessions, 2,000 events/s from real endpoints.

The agents are real `Runtime`s serving the real endpoint (SSE included) in a separate
process, so their work does not count against the console. The console is the real app,
run headless with `App.run_test()`; key presses are timed from press until the screen has
processed them and refreshed. CPU and RSS are the console process's own.

    python bench/bench_console.py [--agents 20] [--sessions 5000] [--rate 2000] [--seconds 10]

Two phases after the initial load: catch-up (the events the agents queued while the
console loaded their snapshots; keys pressed meanwhile are their own row) until the newest
event applied has been under 0.5 s old for 1 s, then the steady state, which the target
is about, for `--seconds`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

#: Every endpoint needs a token; the bench's fleet and console share this one.
TOKEN = "bench-console-token"
#: Steady state: the newest event applied is younger than this, for this long.
STEADY_LAG_S = 0.5
STEADY_FOR_S = 1.0
#: Catch-up is given up on (and said so) after this long.
CATCH_UP_MAX_S = 90.0


def serve(agents: int, sessions: int, rate: float) -> None:
    """Child process: the fleet. Prints the endpoint URLs, then generates events."""
    from agentops_console.runtime import Runtime

    runtimes = []
    live: list[Any] = []
    per_agent = sessions // agents
    for n in range(agents):
        rt = Runtime(agent=f"agent-{n:02d}", version="1.0.0", tenant="bench", token=TOKEN)
        rt.start(host="127.0.0.1", port=0)
        runtimes.append(rt)
        for m in range(per_agent):
            live.append(rt.session(workflow=f"wf-{m % 5}", principal=f"user-{m}"))
    print(json.dumps([rt.url for rt in runtimes]), flush=True)
    tick = 0.01
    per_tick = rate * tick
    owed = 0.0
    index = 0
    next_at = time.perf_counter()
    while True:
        owed += per_tick
        while owed >= 1:
            owed -= 1
            session = live[index % len(live)]
            index += 7919  # a prime stride spreads events over agents and sessions
            session.llm_call(model="bench-model", input_tokens=10, output_tokens=0)
        next_at += tick
        delay = next_at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def event_lag_s(app: Any) -> float | None:
    """How old the newest applied event is (the agents run on this machine: one clock)."""
    from datetime import UTC, datetime

    at = app.ingest.applied_at
    return None if at is None else (datetime.now(UTC) - at).total_seconds()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def drive(
    urls: list[str], sessions: int, seconds: float, profile: str | None = None
) -> dict[str, Any]:
    from agentops_console.console.app import AgentOpsConsole
    from agentops_console.console.connection import AgentSource
    from agentops_console.console.widgets.sessions_table import SessionsTable

    sources = [AgentSource(f"agent-{n:02d}", url, token=TOKEN) for n, url in enumerate(urls)]
    app = AgentOpsConsole(sources, operator="bench", readonly=True)
    timings: dict[str, list[float]] = {}
    result: dict[str, Any] = {}
    async with app.run_test(headless=True, size=(200, 50)) as pilot:
        t0 = time.perf_counter()
        await pilot.press("2")
        table = app.screen.query_one(SessionsTable)
        while table.row_count < sessions:
            await asyncio.sleep(0.05)
            if time.perf_counter() - t0 > 60:
                raise SystemExit(f"only {table.row_count} rows after 60s")
        result["load_s"] = time.perf_counter() - t0

        from textual import events
        from textual.widgets import Input

        def key_event(key: str) -> events.Key:
            char = {"slash": "/", "escape": None, "up": None}.get(
                key, key if len(key) == 1 else None
            )
            return events.Key(key, char)

        # A key counts as answered at the first frame written once its effect is in the
        # app's state. (`call_after_refresh` is not that: after a view switch it fires
        # before the new view's first frame, so it missed Textual's 50 ms hold and the
        # redraw of the view's table.)
        drawn: list[Callable[[], bool]] = []
        frame_at: list[float] = []
        display = app._display

        def display_timed(screen: Any, update: Any) -> None:
            held = app._batch_count > 0  # composed but not written: not on screen
            display(screen, update)
            if update is not None and not held and drawn and drawn[0]():
                frame_at.append(time.perf_counter())
                drawn.clear()

        app._display = display_timed  # type: ignore[method-assign,assignment]

        async def timed(kind: str, key: str, shown: Callable[[], bool]) -> None:
            """Post the key as the terminal driver would; wait for the first frame
            written after its effect is in the app's state."""
            if key == "j" and at_bottom():
                # the cursor follows its session through a sort, which can put it on the
                # last row (it did at 1,000 sessions): there `j` rightly does nothing
                key = "up"
            frame_at.clear()
            drawn[:] = [shown]
            start = time.perf_counter()
            app.post_message(key_event(key))
            while not frame_at:
                await asyncio.sleep(0.001)
                if time.perf_counter() - start > 10:
                    raise SystemExit(f"{kind}: no effect on screen after 10s")
            timings.setdefault(kind, []).append((frame_at[0] - start) * 1000)

        def sessions_table() -> SessionsTable:
            return app.screen.query_one(SessionsTable)

        def at_bottom() -> bool:
            table = sessions_table()
            return table.cursor_row >= table.row_count - 1

        def cursor_moved() -> Callable[[], bool]:
            table = sessions_table()
            before = table.cursor_row
            return lambda: table.cursor_row != before

        def sorted_by_next() -> Callable[[], bool]:
            table = sessions_table()
            before = table.sort_by
            return lambda: table.sort_by != before

        def filter_is(text: str) -> Callable[[], bool]:
            return lambda: sessions_table().filter_text == text

        def filter_open() -> bool:
            return bool(app.screen.query_one("#filter", Input).has_focus)

        plan: list[tuple[str, str, Callable[[], Callable[[], bool]]]] = []
        plan += [("move j", "j", cursor_moved)] * 40
        plan += [("sort s", "s", sorted_by_next)] * 4
        for _ in range(5):
            plan += [("view 1/2", "1", lambda: lambda: app.current_mode == "fleet")]
            plan += [("view 1/2", "2", lambda: lambda: app.current_mode == "sessions")]
        plan += [("filter /", "slash", lambda: filter_open)]
        plan += [("filter type", "w", lambda: filter_is("w"))]
        plan += [("filter type", "f", lambda: filter_is("wf"))]
        plan += [("filter esc", "escape", lambda: filter_is(""))]
        plan += [("move j", "j", cursor_moved)] * 20

        # Catch-up: the agents queued events while the console loaded their snapshots.
        # Keys are pressed meanwhile (timed as their own row); steady state begins once
        # the newest event applied has been under STEADY_LAG_S old for STEADY_FOR_S.
        catch0, events_c0 = time.perf_counter(), app.store.events_applied
        steady_since: float | None = None
        n = 0
        catching = timings.setdefault("catch-up keys", [])
        while time.perf_counter() - catch0 < CATCH_UP_MAX_S:
            lag = event_lag_s(app)
            now = time.perf_counter()
            if lag is not None and lag < STEADY_LAG_S:
                steady_since = steady_since if steady_since is not None else now
                if now - steady_since >= STEADY_FOR_S:
                    break
            else:
                steady_since = None
            kind, key, expect = plan[n % len(plan)]
            n += 1
            if kind.startswith("filter"):
                continue  # the filter line is part of the steady plan only
            await timed("catch-up keys", key, expect())
            await asyncio.sleep(0.1)
        result["catch_up_s"] = (steady_since or time.perf_counter()) - catch0
        result["catch_up_events"] = app.store.events_applied - events_c0
        result["steady"] = steady_since is not None
        result["steady_at_s"] = (steady_since or time.perf_counter()) - t0
        if not catching:
            del timings["catch-up keys"]
        if app.current_mode != "sessions":  # catch-up ended between a `1` and its `2`
            await pilot.press("2")

        profiler = None
        if profile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        cpu0, wall0, events0 = time.process_time(), time.perf_counter(), app.store.events_applied
        deadline = wall0 + seconds
        step = seconds / len(plan)
        lags: list[float] = []
        for kind, key, expect in plan:
            await timed(kind, key, expect())
            lag = event_lag_s(app)
            if lag is not None:
                lags.append(lag)
            remaining = deadline - time.perf_counter()
            await asyncio.sleep(max(0.0, min(step, remaining)))
        while time.perf_counter() < deadline:
            await asyncio.sleep(0.1)
        wall = time.perf_counter() - wall0
        if profiler is not None and profile:
            profiler.disable()
            profiler.dump_stats(profile)
        result["cpu_pct"] = (time.process_time() - cpu0) / wall * 100
        result["events_per_s"] = (app.store.events_applied - events0) / wall
        result["lag_p95_s"] = pct(lags, 0.95) if lags else float("nan")
        result["rss_mb"] = rss_mb()
        result["sessions"] = len(app.store.sessions)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["timings"] = timings
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--sessions", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=2000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument(
        "--profile", metavar="FILE", help="cProfile the steady state into FILE (pstats)"
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.agents, args.sessions, args.rate)
        return
    os.environ.setdefault("TEXTUAL_ANIMATIONS", "none")
    child = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--serve",
            f"--agents={args.agents}",
            f"--sessions={args.sessions}",
            f"--rate={args.rate}",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        urls = json.loads(child.stdout.readline())
        result = asyncio.run(
            drive(urls, args.sessions // args.agents * args.agents, args.seconds, args.profile)
        )
    finally:
        child.terminate()
        child.wait(10)
    timings = dict(result["timings"])
    catching = timings.pop("catch-up keys", [])
    every = [t for ts in timings.values() for t in ts]
    steady = (
        f"steady state from {result['steady_at_s']:.1f}s after start"
        if result["steady"]
        else f"NOT steady after {CATCH_UP_MAX_S:.0f}s of catch-up"
    )
    print(
        f"console bench: {args.agents} agents, {result['sessions']} sessions, "
        f"{args.rate:.0f} events/s offered, initial load {result['load_s']:.1f}s; "
        f"catch-up {result['catch_up_s']:.1f}s ({result['catch_up_events']} events applied); "
        f"{steady}: {result['events_per_s']:.0f} events/s applied, "
        f"event lag p95 {result['lag_p95_s'] * 1000:.0f} ms"
    )
    print(f"{'metric':<28}{'measured':>12}{'target':>12}")
    if catching:
        label = "catch-up keys p50/p95 ms"
        print(f"{label:<28}{statistics.median(catching):>6.1f}/{pct(catching, 0.95):<5.1f}")
    print(f"{'steady key → screen p95 ms':<28}{pct(every, 0.95):>12.1f}{'< 100':>12}")
    for kind, values in timings.items():
        label = f"  {kind} p50/p95 ms"
        print(f"{label:<28}{statistics.median(values):>6.1f}/{pct(values, 0.95):<5.1f}{'':>12}")
    rss = f"{result['rss_mb']:>6.0f}/{result['peak_rss_mb']:<5.0f}"
    print(f"{'RSS MB (now / peak)':<28}{rss}{'< 300':>12}")
    print(f"{'CPU % of one core':<28}{result['cpu_pct']:>12.0f}{'< 100':>12}")
    # comparable across runs on a shared box, where the share of a core the console gets
    # (and so the events/s it applies) varies with the other load
    per_event = result["cpu_pct"] / 100 / max(result["events_per_s"], 1e-9) * 1e6
    print(f"{'CPU µs per event applied':<28}{per_event:>12.0f}")


if __name__ == "__main__":
    main()
