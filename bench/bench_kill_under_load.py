"""Kill → refused latency while 50 agent threads make tool calls (issue 8, item 12).

The operator's kill comes from another process (as `agentops kill` or the console would
send it), over a new connection each time, so the figure includes accepting the
connection under load. Measured from the moment the kill is handed to the client process
to the moment the killed session's next tool call raises SessionKilled; printed beside
the same measure with no load, and as a ratio.

Run: `.venv/bin/python bench/bench_kill_under_load.py` (also run by `python -m bench`).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import textwrap
import threading
import time

from agentops_console.protocol.models import Budgets
from agentops_console.runtime import Runtime, RuntimeConfig, SessionKilled

TOKEN = "bench-token"
LOAD_THREADS = 50
ROUNDS = 40
TARGET_P99_MS = 100.0

# The operator: reads "<port> <session id>" lines, sends each kill on a new connection.
OPERATOR = textwrap.dedent(
    """
    import socket, sys
    for line in sys.stdin:
        port, sid = line.split()
        body = b'{"operator": "bench", "reason": "bench"}'
        with socket.create_connection(("127.0.0.1", int(port))) as sock:
            sock.sendall(
                b"POST /v1/sessions/%s/kill HTTP/1.1\\r\\nHost: 127.0.0.1:%s\\r\\n"
                b"Authorization: Bearer TOKEN\\r\\nContent-Type: application/json\\r\\n"
                b"Content-Length: %d\\r\\nConnection: close\\r\\n\\r\\n%s"
                % (sid.encode(), port.encode(), len(body), body)
            )
            while sock.recv(65536):
                pass
        print("done", flush=True)
    """
).replace("TOKEN", TOKEN)


def _load(rt: Runtime, stop: threading.Event) -> None:
    """An agent thread as busy as it can be: tool calls back to back, in 200-call sessions."""
    while not stop.is_set():
        with rt.session(workflow="load", principal="u") as s:
            for i in range(200):
                if stop.is_set():
                    break
                with s.tool_call("work", {"i": i % 3}):
                    pass
                s.steps.clear()


def kill_to_refused(load_threads: int, rounds: int) -> list[float]:
    rt = Runtime("bench", "1", token=TOKEN, config=RuntimeConfig(budgets=Budgets()))
    url = rt.start()
    port = url.rsplit(":", 1)[1]
    stop = threading.Event()
    loaders = [threading.Thread(target=_load, args=(rt, stop)) for _ in range(load_threads)]
    for thread in loaders:
        thread.start()
    operator = subprocess.Popen(
        [sys.executable, "-c", OPERATOR], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert operator.stdin is not None and operator.stdout is not None
    results: list[float] = []
    try:
        time.sleep(0.5)  # the load reaches its steady state
        for _ in range(rounds):
            refused_at: list[float] = []
            started = threading.Event()
            holder: list[str] = []

            def agent(
                started: threading.Event = started,
                refused_at: list[float] = refused_at,
                holder: list[str] = holder,
            ) -> None:
                try:
                    with rt.session(workflow="w", principal="u") as s:
                        holder.append(s.id)
                        started.set()
                        while True:
                            with s.tool_call("work", {"i": 0}):
                                time.sleep(0.001)  # a tool that takes a millisecond
                except SessionKilled:
                    refused_at.append(time.perf_counter())

            worker = threading.Thread(target=agent)
            worker.start()
            started.wait()
            time.sleep(0.01)
            sent = time.perf_counter()
            operator.stdin.write(f"{port} {holder[0]}\n")
            operator.stdin.flush()
            operator.stdout.readline()
            worker.join(10)
            results.append((refused_at[0] - sent) * 1000)
    finally:
        stop.set()
        operator.stdin.close()
        operator.wait(10)
        for thread in loaders:
            thread.join(10)
        rt.stop()
    return results


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def main() -> int:
    idle = kill_to_refused(0, ROUNDS)
    busy = kill_to_refused(LOAD_THREADS, ROUNDS)
    rows = []
    for name, values in (("no load", idle), (f"{LOAD_THREADS} threads of tool calls", busy)):
        rows.append(
            (
                name,
                statistics.median(values),
                _p(values, 0.99),
                max(values),
            )
        )
    print(f"{'kill → next call refused':<34}  {'p50 ms':>8}  {'p99 ms':>8}  {'max ms':>8}")
    for name, p50, p99, worst in rows:
        print(f"{name:<34}  {p50:>8.1f}  {p99:>8.1f}  {worst:>8.1f}")
    ratio = rows[1][1] / rows[0][1] if rows[0][1] else float("inf")
    ok = rows[1][2] < TARGET_P99_MS
    print(
        f"under load / no load (p50): {ratio:.1f}x; p99 under load {rows[1][2]:.1f} ms "
        f"(target < {TARGET_P99_MS:.0f} ms): {'ok' if ok else 'NO'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
