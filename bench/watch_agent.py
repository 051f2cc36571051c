"""The agent of bench_watch's end-to-end rows, in a process of its own (so its CPU is not the
watcher's): a real runtime (explicit API) serving its endpoint on loopback.

    python bench/watch_agent.py BACKLOG [--no-batch-route] [--render-share X]

finishes BACKLOG sessions of 10 tool calls each, prints `<url> <token>` and then reads
commands on stdin: `live <sessions> <per_second>` runs that many more sessions at that pace
and prints `done <time.time() of the last end>`; `quit` (or end of input) stops.
`--no-batch-route` serves the endpoint without GET /v1/session-details: an older runtime,
which the watcher reads one session at a time. `--render-share X` lets the agent's event
streams spend that share of the time rendering (runtime/sse.py RENDER_SHARE, 0.15): at 22
events per session that share, not the watcher, bounds how fast a live agent's events reach
any follower; the diagnostic shows what the watcher does when they come faster.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agentops_console.protocol.models import Budgets
from agentops_console.runtime import Runtime, server, sse
from agentops_console.runtime.config import RuntimeConfig
from agentops_console.runtime.session import Session

TOKEN = "bench-watch-token"
TOOLS = 10


def one_session(rt: Runtime, n: int) -> Session:
    """The bench's session: 10 tool calls (bench_detail renders the same ones)."""
    with rt.session("password-reset", f"user-{n % 50}") as s:
        for i in range(TOOLS):
            with s.tool_call("kb_search", {"query": f"q{n}-{i}"}) as call:
                call.output = {"hits": i}
    return s


def main() -> int:
    backlog = int(sys.argv[1])
    if "--render-share" in sys.argv:
        sse.RENDER_SHARE = float(sys.argv[sys.argv.index("--render-share") + 1])
    if "--no-batch-route" in sys.argv:
        server.ROUTES = tuple(r for r in server.ROUTES if r[2] != "get_session_details")
    config = RuntimeConfig(
        budgets=Budgets(max_consecutive_tool_calls=1000),
        finished_sessions=backlog + 100_000,
        event_log_size=2_000_000,
    )
    rt = Runtime(agent="bench-agent", version="1.0.0", tenant="acme", token=TOKEN, config=config)
    for n in range(backlog):
        one_session(rt, n)
    rt.start(host="127.0.0.1", port=0)
    assert rt._server is not None
    print(rt._server.url, TOKEN, flush=True)
    made = backlog
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "quit":
            break
        count, rate = int(words[1]), float(words[2])
        start = time.perf_counter()
        for i in range(count):
            pause = start + i / rate - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            one_session(rt, made)
            made += 1
        print("done", time.time(), flush=True)
    rt.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
