"""Snapshots that scale (issue 12, target 5): the first `GET /v1/sessions` page at 100,000
live sessions, and the guard's p99 while such pages are being served.

The page is fetched by another process over a new connection each time (as a console
connecting would), beside `GET /v1/health` on the same endpoint in the same run (the
bare round trip). The guard's per-call times (a tool call with no policy) are taken on
the agent's thread with no reader, then while a reader fetches first pages back to back,
and the p99s are compared.

Run: `.venv/bin/python bench/bench_snapshot.py [--sessions N]` (also `python -m bench`).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench.table` as a script

from agentops_console.protocol.models import Budgets
from agentops_console.runtime import Runtime, RuntimeConfig
from agentops_console.runtime.session import Session
from bench.table import Figure, print_table

TOKEN = "bench-token"

# Reads "<path>" lines; fetches each on a new connection and prints the wall ms and bytes.
READER = textwrap.dedent(
    """
    import socket, sys, time
    port = int(sys.argv[1])
    for line in sys.stdin:
        path = line.strip()
        started = time.perf_counter()
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(
                b"GET %s HTTP/1.1\\r\\nHost: 127.0.0.1:%d\\r\\n"
                b"Authorization: Bearer TOKEN\\r\\nConnection: close\\r\\n\\r\\n"
                % (path.encode(), port)
            )
            size = 0
            while chunk := sock.recv(1 << 20):
                size += len(chunk)
        print(f"{(time.perf_counter() - started) * 1000:.3f} {size}", flush=True)
    """
).replace("TOKEN", TOKEN)


class Reader:
    """The other process: one GET per line, on a new connection each."""

    def __init__(self, port: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", READER, str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def get(self, path: str) -> tuple[float, int]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(path + "\n")
        self.proc.stdin.flush()
        ms, size = self.proc.stdout.readline().split()
        return float(ms), int(size)

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def guard_times(session: Session, calls: int) -> list[float]:
    """µs per guarded tool call (no policy), one by one on this thread."""
    times: list[float] = []
    clock = time.perf_counter
    for n in range(calls):
        started = clock()
        with session.tool_call("kb_search", {"query": n}) as call:
            call.output = n
        times.append((clock() - started) * 1e6)
    return times


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def p999(values: list[float]) -> float:
    return statistics.quantiles(values, n=1000)[998]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--pages", type=int, default=20)
    args = parser.parse_args()
    config = RuntimeConfig(budgets=Budgets(), spans_per_session=4)
    rt = Runtime("bench", "1", token=TOKEN, config=config)
    url = rt.start(host="127.0.0.1", port=0)
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    started = time.perf_counter()
    live = [rt.session("wf", f"user-{i}") for i in range(args.sessions)]
    build_s = time.perf_counter() - started
    agent = rt.session("wf", "guarded")
    reader = Reader(port)
    try:
        reader.get("/v1/health")  # warm: imports, the first connection
        page_ms: list[float] = []
        health_ms: list[float] = []
        size = 0
        for _ in range(args.pages):
            ms, size = reader.get("/v1/sessions?status=active")
            page_ms.append(ms)
            health_ms.append(reader.get("/v1/health")[0])
        quiet = guard_times(agent, 20_000)
        stop = threading.Event()
        served = [0]

        def fetch() -> None:
            other = Reader(port)
            try:
                while not stop.is_set():
                    other.get("/v1/sessions?status=active")
                    served[0] += 1
            finally:
                other.close()

        thread = threading.Thread(target=fetch, daemon=True)
        thread.start()
        time.sleep(0.2)
        busy = guard_times(agent, 20_000)
        stop.set()
        thread.join(timeout=30)
    finally:
        reader.close()
        for session in live:
            session.end()
        agent.end()
        rt.stop()
    page = statistics.median(page_ms)
    figures = [
        Figure(
            f"first GET /v1/sessions page at {args.sessions:,} live (median of {args.pages})",
            page,
            unit="ms",
            baseline=statistics.median(health_ms),
            baseline_name="GET /v1/health, same endpoint",
            max_value=100.0,
        ),
        Figure(
            "  same, p95 of the fetches",
            statistics.quantiles(page_ms, n=20)[18],
            unit="ms",
        ),
        Figure(
            f"guard p99 while first pages are served ({served[0]} served)",
            p99(busy),
            unit="µs",
            baseline=p99(quiet),
            baseline_name="guard p99, no reader",
            max_ratio=1.5,
        ),
        Figure(
            "guard p99.9 while served (a page's longest hold of the interpreter lock)",
            p999(busy),
            unit="µs",
            baseline=p999(quiet),
            baseline_name="guard p99.9, no reader",
        ),
        Figure(
            "guard median while served",
            statistics.median(busy),
            unit="µs",
            baseline=statistics.median(quiet),
            baseline_name="guard median, no reader",
        ),
    ]
    print(
        f"{args.sessions:,} live sessions opened in {build_s:.1f} s; first page "
        f"{size / 1024:.0f} KiB; page ms {min(page_ms):.1f}–{max(page_ms):.1f}"
    )
    return 0 if print_table("snapshots that scale", figures) else 1


if __name__ == "__main__":
    raise SystemExit(main())
