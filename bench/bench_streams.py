"""What console streams cost the agent, and how fast an event reaches them.

Run: `.venv/bin/python bench/bench_streams.py [--rounds N]` (also run by `python -m bench`).

- Per-call cost: one tool call and one LLM call through the explicit API on the agent's
  thread, with no stream (the baseline), 1 and 10 SSE streams read as fast as they come
  by another process that only drains its sockets (a parsing reader's own CPU would
  compete with the agent for this box's two cores and be counted as the agent's). "Full
  rate" is a loop with no pause (the worst case: every microsecond the streams take is the
  agent's); "paced" waits 2 ms between calls as an
  agent awaiting a model does, and times only the calls. Rounds alternate the
  configurations; the ratio is the median of per-round ratios.
- Events lost: one more run per round with 10 streams whose reader parses every event and
  checks them in order; a jump without a `gap` message
  before it is an unannounced loss (must be 0); announced gaps are counted.
- Event → client: a flag every 10 ms, time of publish to the reader's receipt in another
  process, against a bare socket loop writing the same pre-rendered bytes.

`agentops --help` against `python -c "import typer"` is bench_governance.py's first row
(`--help-only` for it alone).
"""

from __future__ import annotations

import argparse
import json
import queue
import re
import selectors
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agentops_console.runtime import Runtime  # noqa: E402
from bench.table import Figure, print_table, spread  # noqa: E402

TOKEN = "bench-token"
_ID = re.compile(rb"^id: (\d+)\nevent: ", re.M)
#: The flag's own message (the session summary before it lists older flags).
_SENT = re.compile(rb'"flag":\{[^{}]*?"message":"([0-9.]+)"')
HERE = Path(__file__).resolve()


# -- the reader process ---------------------------------------------------------------
def reader(port: int, streams: int, http: bool, check: bool = True) -> None:
    """Open `streams` streams, read until SIGTERM/EOF on stdin, report JSON on stdout:
    events, announced gaps, unannounced jumps, and the latencies of flag events."""
    socks = []
    for _ in range(streams):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if http:
            s.sendall(
                b"GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                b"Authorization: Bearer %s\r\n\r\n" % (port, TOKEN.encode())
            )
        socks.append(s)
    sel = selectors.DefaultSelector()
    state: dict[socket.socket, dict[str, object]] = {}
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
        state[s] = {"buf": b"", "last": None, "gapped": False}
    sel.register(sys.stdin, selectors.EVENT_READ)
    events = gaps = unannounced = 0
    latencies: list[float] = []
    print("ready", flush=True)
    open_streams = len(socks)
    if not check:  # as cheap as a reader can be: the box's cores are the agent's too
        drained = bytearray(1 << 20)
        while open_streams:
            for key, _ in sel.select():
                if key.fileobj is sys.stdin:
                    open_streams = 0
                    break
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                size = sock.recv_into(drained)
                if not size:
                    sel.unregister(sock)
                    open_streams -= 1
                gaps += drained.find(b"event: gap", 0, size) >= 0
        print(json.dumps({"events": 0, "gaps": gaps, "unannounced": 0, "latencies": []}))
        return
    while open_streams:
        for key, _ in sel.select():
            if key.fileobj is sys.stdin:
                open_streams = 0
                break
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            data = sock.recv(1 << 20)
            now = time.time()
            st = state[sock]
            if not data:
                sel.unregister(sock)
                open_streams -= 1
                continue
            buf = st["buf"] + data  # type: ignore[operator]
            cut = buf.rfind(b"\n\n") + 2
            whole, st["buf"] = buf[:cut], buf[cut:]
            if b"event: gap" in whole:
                gaps += whole.count(b"event: gap")
            seqs = [int(x) for x in _ID.findall(whole)]
            if seqs:
                last = st["last"]
                first = seqs[0] if last is None else last + 1  # type: ignore[operator]
                if seqs[0] != first or seqs[-1] - first + 1 != len(seqs):
                    unannounced += 1  # a jump (the server never repeats within a stream)
                st["last"] = seqs[-1]
                events += len(seqs)
            for match in _SENT.finditer(whole):
                latencies.append((now - float(match.group(1))) * 1000)
    print(
        json.dumps(
            {"events": events, "gaps": gaps, "unannounced": unannounced, "latencies": latencies}
        ),
        flush=True,
    )


class Readers:
    """A reader process on `port`: started, ready, then stopped with its report."""

    def __init__(self, port: int, streams: int, http: bool = True, check: bool = True) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(HERE),
                "--reader",
                str(port),
                str(streams),
                str(int(http)),
                str(int(check)),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "ready"

    def stop(self) -> dict[str, object]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        out = self.proc.stdout.read()
        self.proc.wait(30)
        result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
        return result


# -- per-call cost --------------------------------------------------------------------
def _runtime() -> Runtime:
    from agentops_console.protocol.models import Budgets, BudgetUpdate
    from agentops_console.runtime import RuntimeConfig, ToolSpec

    rt = Runtime(
        "bench",
        "1",
        token=TOKEN,
        config=RuntimeConfig(budgets=Budgets(), spans_per_session=100),
        tools=[ToolSpec("kb_search", read_only=True, category="retrieval", corpus="it-kb")],
    )
    rt.set_budgets(
        BudgetUpdate(scope="agent", max_tool_calls=10**7, max_consecutive_tool_calls=10**7)
    )
    return rt


def call_cost(
    streams: int, calls: int, pace_s: float, check: bool = False
) -> tuple[float, float, dict[str, object]]:
    """(µs per call on the agent's thread, process CPU µs per call, reader report). With
    `check` the reader parses every event (order, gaps); without, it only drains."""
    rt = _runtime()
    url = rt.start()
    port = int(url.rsplit(":", 1)[1])
    readers = Readers(port, streams, check=check) if streams else None
    if readers:
        deadline = time.monotonic() + 10
        server = rt._server
        assert server is not None
        while len(server._connections) < streams and time.monotonic() < deadline:
            time.sleep(0.005)
    spent = 0.0
    with rt.session(workflow="w", principal="u") as s:
        for i in range(200):  # warm: prices, caches
            with s.tool_call("kb_search", {"query": f"w{i}"}):
                pass
            s.llm_call(model="gpt-4o-mini", input_tokens=100, output_tokens=10)
        cpu0 = time.process_time()
        wall0 = time.perf_counter()
        for i in range(calls):
            t0 = time.perf_counter()
            with s.tool_call("kb_search", {"query": f"q{i}"}):
                pass
            s.llm_call(model="gpt-4o-mini", input_tokens=100, output_tokens=10)
            spent += time.perf_counter() - t0
            if i % 500 == 499:
                s.steps.clear()
            if pace_s:
                time.sleep(pace_s)
        wall = time.perf_counter() - wall0
        cpu = time.process_time() - cpu0
    time.sleep(0.3)  # let the streams drain
    report = readers.stop() if readers else {}
    rt.stop()
    per_call = (wall if not pace_s else spent) / calls * 1e6
    return per_call, cpu / calls * 1e6, report


def cost_rows(rounds: int, calls: int, pace_s: float, label: str) -> list[Figure]:
    base: list[float] = []
    by: dict[int, list[float]] = {1: [], 10: []}
    ratios: dict[int, list[float]] = {1: [], 10: []}
    lost = gaps = events = 0
    for _ in range(rounds):
        b, _, _ = call_cost(0, calls, pace_s)
        base.append(b)
        for n in (1, 10):
            v, _, rep = call_cost(n, calls, pace_s)
            by[n].append(v)
            ratios[n].append(v / b)
            gaps += int(rep["gaps"])  # type: ignore[call-overload]
        _, _, rep = call_cost(10, calls, pace_s, check=True)  # every event parsed and checked
        lost += int(rep["unannounced"])  # type: ignore[call-overload]
        gaps += int(rep["gaps"])  # type: ignore[call-overload]
        events += int(rep["events"])  # type: ignore[call-overload]
    b = statistics.median(base)
    print(
        f"{label}: per-call µs, no stream {spread(base)}; 1 stream {spread(by[1])}; "
        f"10 streams {spread(by[10])}; events read {events:,}, gaps {gaps}, "
        f"unannounced {lost}",
        flush=True,
    )
    return [
        Figure(
            f"per call, 1 stream, {label}",
            statistics.median(by[1]),
            baseline=b,
            baseline_name="no stream",
            ratio_override=statistics.median(ratios[1]),
        ),
        Figure(
            f"per call, 10 streams, {label}",
            statistics.median(by[10]),
            baseline=b,
            baseline_name="no stream",
            max_ratio=1.25,
            ratio_override=statistics.median(ratios[10]),
        ),
        Figure(f"events lost unannounced, {label}", lost, unit="", max_value=0),
        Figure(f"announced gaps, {label}", gaps, unit=""),
    ]


# -- event → client latency -----------------------------------------------------------
def latency_agentops(events: int) -> list[float]:
    rt = _runtime()
    url = rt.start()
    readers = Readers(int(url.rsplit(":", 1)[1]), 1)
    time.sleep(0.2)
    with rt.session(workflow="w", principal="u") as s:
        for _ in range(events):
            s.flag("budget_warning", repr(time.time()))
            time.sleep(0.01)
    time.sleep(0.2)
    report = readers.stop()
    rt.stop()
    return report["latencies"]  # type: ignore[return-value]


def latency_bare(events: int, template: bytes) -> list[float]:
    """A minimal SSE writer: a socket loop writing pre-rendered bytes handed to it."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()

    def writer() -> None:
        conn, _ = server.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while (data := outbox.get()) is not None:
            conn.sendall(data)
        conn.close()

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    readers = Readers(port, 1, http=False)
    time.sleep(0.2)
    for n in range(events):
        message = template.replace(b"@SEQ@", b"%d" % (n + 1))
        outbox.put(message.replace(b"@SENT@", repr(time.time()).encode()))
        time.sleep(0.01)
    time.sleep(0.2)
    outbox.put(None)
    thread.join(5)
    report = readers.stop()
    server.close()
    return report["latencies"]  # type: ignore[return-value]


def _flag_template() -> bytes:
    """The bytes agentops writes for a flag event, with placeholders for seq and time."""
    from agentops_console.runtime.sse import render_batch

    rt = _runtime()
    with rt.session(workflow="w", principal="u") as s:
        s.flag("budget_warning", "@SENT@")
    record = next(r for r in rt.events.after(0) if r.type == "flag")
    render_batch([record])
    rt.stop()
    assert record.sse
    return record.sse.replace(b"id: %d\n" % record.seq, b"id: @SEQ@\n", 1)


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * 0.95) - 1)]


def latency_rows(rounds: int, events: int) -> list[Figure]:
    template = _flag_template()
    ours_p50, ours_p95, bare_p50, bare_p95 = [], [], [], []
    for _ in range(rounds):
        ours = latency_agentops(events)
        bare = latency_bare(events, template)
        ours_p50.append(statistics.median(ours))
        ours_p95.append(_p95(ours))
        bare_p50.append(statistics.median(bare))
        bare_p95.append(_p95(bare))
    print(
        f"event → client ms: median {spread(ours_p50)}, p95 {spread(ours_p95)}; "
        f"bare writer median {spread(bare_p50)}, p95 {spread(bare_p95)}",
        flush=True,
    )
    return [
        Figure(
            "event → client, median",
            statistics.median(ours_p50),
            unit="ms",
            baseline=statistics.median(bare_p50),
            baseline_name="bare SSE writer",
            max_value=1.5,
        ),
        Figure(
            "event → client, p95",
            statistics.median(ours_p95),
            unit="ms",
            baseline=statistics.median(bare_p95),
            baseline_name="bare SSE writer",
            max_value=5.0,
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reader", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reader:
        port, streams, http, check = args.reader
        reader(int(port), int(streams), bool(int(http)), bool(int(check)))
        return 0
    figures: list[Figure] = []
    figures += cost_rows(args.rounds, 5_000, 0.0, "full rate")  # 15,000 events: past the ring
    figures += cost_rows(args.rounds, 400, 0.002, "paced 2 ms")
    figures += latency_rows(args.rounds, 150)
    ok = print_table("streams: what consoles cost the agent (medians of rounds)", figures)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
