"""The agent's CPU to render one finished session's detail (GET /v1/session-details and
GET /v1/sessions/{id}): `session_json.detail_json` beside the model path
(`session.detail().model_dump_json(exclude_none=True)`) measured in the same rounds.

Three kinds of 10-span session: bench/watch_agent.py's (10 tool calls, dict arguments and
output, no policy: what `agentops watch` reads in bench_watch), tool calls under the
reference Cedar policy (a policy decision per span) and priced LLM calls (a cost split per
span). The renderer runs in every agent process, beside the agent's own work.

Run: `.venv/bin/python bench/bench_detail.py [--rounds N]`. To compare two versions of the
code, run it alternately with `PYTHONPATH=<other checkout>/src`: the box's speed drifts,
so only numbers taken in the same minutes compare.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench.table` as a script

import agentops_console
from agentops_console.protocol.models import Budgets
from agentops_console.runtime import Runtime, RuntimeConfig, ToolSpec
from agentops_console.runtime.session import Session
from agentops_console.runtime.session_json import detail_json
from bench.table import Figure, median_of_rounds, print_table, spread
from bench.watch_agent import one_session

POLICY = (Path(__file__).resolve().parents[1] / "fixtures/policies/it-support.cedar").read_text()
SESSIONS = 200
SPANS = 10


def _policed_kind(rt: Runtime, n: int) -> Session:
    """A human turn every 4 tool calls: the policy allows 5 calls in a row."""
    with rt.session("password-reset", f"user-{n % 50}") as s:
        for i in range(SPANS):
            if i and i % 4 == 0:
                s.human_input()
            with s.tool_call("kb_search", {"query": f"q{n}-{i}", "n": 3}) as call:
                call.output = {"hits": [{"id": i, "score": 0.5}], "text": "ok"}
    return s


def _llm_kind(rt: Runtime, n: int) -> Session:
    with rt.session("billing", f"user-{n % 50}") as s:
        for i in range(SPANS):
            s.llm_call(
                "claude-sonnet-4-20250514",
                30_000 + i,
                1_500,
                cache_read_tokens=20_000,
                reasoning_tokens=100,
                provider="anthropic",
                latency_ms=812.5,
            )
    return s


def _kinds() -> dict[str, list[Session]]:
    config = RuntimeConfig(
        budgets=Budgets(max_consecutive_tool_calls=1000), finished_sessions=10 * SESSIONS
    )
    plain = Runtime("bench-agent", "1.0.0", tenant="acme", token="t", config=config)
    policed = Runtime(
        "bench-agent",
        "1.0.0",
        tenant="acme",
        token="t",
        policy=POLICY,
        tools=[ToolSpec("kb_search", read_only=True, category="retrieval", corpus="it-kb")],
        config=config,
    )
    return {
        "watch_agent (10 tool calls)": [one_session(plain, n) for n in range(SESSIONS)],
        "tool calls under Cedar policy": [_policed_kind(policed, n) for n in range(SESSIONS)],
        "priced LLM calls (cost split)": [_llm_kind(plain, n) for n in range(SESSIONS)],
    }


def _cpu_us(render: Callable[[Session], object], sessions: list[Session]) -> float:
    """Thread CPU µs per session over one pass."""
    started = time.thread_time()
    for session in sessions:
        render(session)
    return (time.thread_time() - started) / len(sessions) * 1e6


def _model(session: Session) -> bytes:
    return session.detail().model_dump_json(exclude_none=True).encode()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    print(f"code: {Path(agentops_console.__file__).parent}", flush=True)
    figures: list[Figure] = []
    for name, sessions in _kinds().items():
        assert all(detail_json(s) == _model(s) for s in sessions)
        fast: list[list[float]] = []
        model: list[list[float]] = []
        for _ in range(args.rounds):  # alternate, so drift hits both alike
            fast.append([_cpu_us(detail_json, sessions)])
            model.append([_cpu_us(_model, sessions)])
        value = median_of_rounds(fast)
        base = median_of_rounds(model)
        figures.append(
            Figure(f"detail_json: {name}", value, baseline=base, baseline_name="model_dump_json")
        )
        print(f"  {name}: fast {spread([r[0] for r in fast])} µs", flush=True)
    return 0 if print_table("session detail rendering, CPU µs per session", figures) else 1


if __name__ == "__main__":
    raise SystemExit(main())
