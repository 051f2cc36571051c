"""OpenTelemetry in, against what the SDK and protobuf allow (issue 12, targets 4 and 5).

Rows (each a median of per-round medians; each ratio taken within a round, the measures
interleaved so load from other processes lands on all of them alike):

- the span processor's throughput on GenAI runs (an `invoke_agent` span around six `chat`
  spans) vs the SDK's `BatchSpanProcessor` and `SimpleSpanProcessor`, each with an
  exporter that drops what it gets, on the same spans in the same round. Rates are spans
  per second of *process* CPU time, so the batch processor's worker thread is counted;
  thread CPU time and wall time are printed beside them;
- the processor's own cost per non-tool span (with it minus with no processor at all),
  beside the batch processor's own cost;
- its own cost per guarded `execute_tool` span vs the explicit guard (`with
  s.tool_call(...)`) on the same calls;
- OTLP/HTTP ingest (`decode_request` + `ingest_spans`, no policy) in spans per CPU second
  vs decoding the same protobuf body into Python objects alone;
- live-session memory per session (tracemalloc, 10,000 sessions with an LLM call and a
  tool call each) and the summary cache: a snapshot page built cold vs from the cache.

Run: `.venv/bin/python bench/bench_otel.py [--rounds N]` (or `python -m bench`).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import (  # noqa: E402
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import Tracer  # noqa: E402

from agentops_console.protocol.models import Budgets  # noqa: E402
from agentops_console.runtime import Runtime, RuntimeConfig  # noqa: E402
from agentops_console.runtime.otlp import PROTOBUF, decode_request  # noqa: E402
from bench.table import Figure, median_of_rounds, print_table  # noqa: E402

CHATS = 6  # chat spans per run (plus its invoke_agent span)
TOOLS = 30  # execute_tool spans per run in the tool rows


class Drop(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _runtime() -> Runtime:
    return Runtime("bench", "1", config=RuntimeConfig(budgets=Budgets(), finished_sessions=200))


def _tracer(kind: str) -> tuple[Tracer, Runtime | None, TracerProvider]:
    provider = TracerProvider()
    rt = None
    if kind == "ours":
        rt = _runtime()
        provider.add_span_processor(rt.span_processor())
    elif kind == "batch":
        provider.add_span_processor(BatchSpanProcessor(Drop(), max_queue_size=65_536))
    elif kind == "simple":
        provider.add_span_processor(SimpleSpanProcessor(Drop()))
    return provider.get_tracer("bench"), rt, provider


_CHAT = {
    "gen_ai.operation.name": "chat",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.provider.name": "openai",
    "gen_ai.usage.input_tokens": 1200,
    "gen_ai.usage.output_tokens": 300,
}


def _agent(run: str) -> dict[str, Any]:
    return {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.conversation.id": run,
        "gen_ai.agent.name": "helper",
    }


def chat_runs(tracer: Tracer, first: int, runs: int) -> int:
    for n in range(first, first + runs):
        with tracer.start_as_current_span("invoke_agent helper", attributes=_agent(f"c{n}")):
            for _ in range(CHATS):
                with tracer.start_as_current_span("chat gpt-4o-mini", attributes=_CHAT):
                    pass
    return runs * (CHATS + 1)


def tool_runs(tracer: Tracer, first: int, runs: int) -> int:
    for n in range(first, first + runs):
        with tracer.start_as_current_span("invoke_agent helper", attributes=_agent(f"t{n}")):
            for k in range(TOOLS):
                with tracer.start_as_current_span(
                    "execute_tool kb_search",
                    attributes={
                        "gen_ai.operation.name": "execute_tool",
                        "gen_ai.tool.name": "kb_search",
                        "gen_ai.tool.call.arguments": f'{{"query": "q{k}"}}',
                    },
                ):
                    pass
    return runs * TOOLS


def explicit_runs(rt: Runtime, runs: int) -> int:
    for _ in range(runs):
        with rt.session(workflow="helper", principal="unknown") as s:
            for k in range(TOOLS):
                with s.tool_call("kb_search", {"query": f"q{k}"}):
                    pass
    return runs * TOOLS


def explicit_in_spans(tracer: Tracer, rt: Runtime, runs: int) -> int:
    """The explicit guard inside the very SDK spans `tool_runs` makes, with no processor:
    the guard run with the SDK's work between calls (caches, allocations) as the span
    processor's guard is. Minus `tool_none` it is the explicit guard's fair baseline."""
    for n in range(runs):
        agent = tracer.start_as_current_span("invoke_agent helper", attributes=_agent(f"e{n}"))
        with agent, rt.session(workflow="helper", principal="unknown") as s:
            for k in range(TOOLS):
                with (
                    tracer.start_as_current_span(
                        "execute_tool kb_search",
                        attributes={
                            "gen_ai.operation.name": "execute_tool",
                            "gen_ai.tool.name": "kb_search",
                            "gen_ai.tool.call.arguments": f'{{"query": "q{k}"}}',
                        },
                    ),
                    s.tool_call("kb_search", {"query": f"q{k}"}),
                ):
                    pass
    return runs * TOOLS


class Clock:
    """Process CPU, thread CPU and wall time of one measured block."""

    def __init__(self) -> None:
        self.process = time.process_time()
        self.thread = time.thread_time()
        self.wall = time.perf_counter()

    def read(self) -> tuple[float, float, float]:
        return (
            time.process_time() - self.process,
            time.thread_time() - self.thread,
            time.perf_counter() - self.wall,
        )


def measure(work: Callable[[], int]) -> tuple[float, float, float]:
    """µs per span by process CPU, thread CPU and wall time."""
    clock = Clock()
    spans = work()
    return tuple(t / spans * 1e6 for t in clock.read())  # type: ignore[return-value]


def spread(values: Sequence[float]) -> str:
    return f"{min(values):.1f}–{max(values):.1f}"


def processor_rows(rounds: int, runs: int) -> tuple[list[Figure], list[str]]:
    kinds = ("ours", "batch", "simple", "none")
    tracers = {k: _tracer(k) for k in kinds}
    explicit_rt = _runtime()
    per: dict[str, list[tuple[float, float, float]]] = {}
    counter = [0]

    def chats(kind: str) -> Callable[[], int]:
        def work() -> int:
            counter[0] += runs
            return chat_runs(tracers[kind][0], counter[0], runs)

        return work

    def tools(kind: str) -> Callable[[], int]:
        def work() -> int:
            counter[0] += runs
            return tool_runs(tracers[kind][0], counter[0], runs)

        return work

    works = {f"chat_{k}": chats(k) for k in kinds}
    works |= {f"tool_{k}": tools(k) for k in ("ours", "none")}
    works["explicit"] = lambda: explicit_runs(explicit_rt, runs)
    works["explicit_in_spans"] = lambda: explicit_in_spans(tracers["none"][0], explicit_rt, runs)
    for work in works.values():  # warm up: imports, prices, caches
        work()
    ratios: dict[str, list[float]] = {"batch": [], "simple": [], "tool": [], "fair": []}
    for _ in range(rounds):
        got = {name: measure(work) for name, work in works.items()}
        for name, value in got.items():
            per.setdefault(name, []).append(value)
        ratios["batch"].append(got["chat_batch"][0] / got["chat_ours"][0])
        ratios["simple"].append(got["chat_simple"][0] / got["chat_ours"][0])
        ratios["tool"].append((got["tool_ours"][0] - got["tool_none"][0]) - got["explicit"][0])
        ratios["fair"].append(got["tool_ours"][0] - got["explicit_in_spans"][0])
    for _, rt, provider in tracers.values():
        provider.shutdown()
        if rt is not None:
            rt.stop()
    explicit_rt.stop()

    def med(name: str, clock: int = 0) -> float:
        return median_of_rounds([[v[clock]] for v in per[name]])

    def rate(name: str, clock: int = 0) -> float:
        return 1e6 / med(name, clock)

    own = [v[0] - n[0] for v, n in zip(per["chat_ours"], per["chat_none"], strict=True)]
    batch_own = [v[0] - n[0] for v, n in zip(per["chat_batch"], per["chat_none"], strict=True)]
    tool_own = [v[0] - n[0] for v, n in zip(per["tool_ours"], per["tool_none"], strict=True)]
    figures = [
        Figure(
            "span processor, GenAI runs (process CPU)",
            rate("chat_ours"),
            "spans/s",
            baseline=rate("chat_batch"),
            baseline_name="BatchSpanProcessor",
            ratio_override=statistics.median(ratios["batch"]),
            min_ratio=1.0,
        ),
        Figure(
            "span processor, GenAI runs (process CPU)",
            rate("chat_ours"),
            "spans/s",
            baseline=rate("chat_simple"),
            baseline_name="SimpleSpanProcessor",
            ratio_override=statistics.median(ratios["simple"]),
        ),
        Figure(
            "own cost per non-tool span",
            statistics.median(own),
            baseline=statistics.median(batch_own),
            baseline_name="BatchSpanProcessor's own",
            max_value=8,
        ),
        Figure(
            "own cost per guarded execute_tool span",
            statistics.median(tool_own),
            baseline=med("explicit"),
            baseline_name="explicit guard",
        ),
        Figure(
            "  of which beyond the explicit guard",
            statistics.median(ratios["tool"]),
            max_value=5,
        ),
        Figure(
            "  beyond the explicit guard in the same SDK spans",
            statistics.median(ratios["fair"]),
        ),
    ]
    notes = [
        "spread over rounds (µs per span, process CPU): "
        + ", ".join(f"{n} {spread([v[0] for v in per[n]])}" for n in per),
        "thread CPU µs per span: "
        + ", ".join(f"{n} {med(n, 1):.1f}" for n in per)
        + "; wall: "
        + ", ".join(f"{n} {med(n, 2):.1f}" for n in per),
    ]
    return figures, notes


def otlp_body(first: int, runs: int) -> bytes:
    """An ExportTraceServiceRequest as the stock exporter sends it: runs of an agent span
    around three chat and three tool spans."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("bench")
    for n in range(first, first + runs):
        with tracer.start_as_current_span("invoke_agent helper", attributes=_agent(f"o{n}")):
            for k in range(3):
                with tracer.start_as_current_span("chat gpt-4o-mini", attributes=_CHAT):
                    pass
                with tracer.start_as_current_span(
                    "execute_tool kb_search",
                    attributes={
                        "gen_ai.operation.name": "execute_tool",
                        "gen_ai.tool.name": "kb_search",
                        "gen_ai.tool.call.arguments": f'{{"query": "q{k}"}}',
                    },
                ):
                    pass
    provider.shutdown()
    return encode_spans(memory.get_finished_spans()).SerializeToString()  # type: ignore[no-any-return]


def otlp_rows(rounds: int, runs: int) -> tuple[list[Figure], list[str]]:
    rt = _runtime()
    bodies = [otlp_body(r * runs, runs) for r in range(rounds + 1)]
    spans = runs * 7
    rt.ingest_spans(decode_request(bodies[-1], PROTOBUF))  # warm up
    ingest: list[float] = []
    decode: list[float] = []
    ratios: list[float] = []
    for body in bodies[:rounds]:
        clock = Clock()
        decoded = decode_request(body, PROTOBUF)
        d = clock.read()[1]
        clock = Clock()
        accepted = rt.ingest_spans(decode_request(body, PROTOBUF))
        i = clock.read()[1]
        assert accepted == spans and len(decoded) == spans, (accepted, len(decoded))
        ingest.append(spans / i)
        decode.append(spans / d)
        ratios.append(d / i)
    rt.stop()
    figures = [
        Figure(
            "OTLP ingest, GenAI spans, no policy (CPU)",
            statistics.median(ingest),
            "spans/s",
            baseline=statistics.median(decode),
            baseline_name="protobuf decode alone",
            ratio_override=statistics.median(ratios),
            min_value=100_000,
        )
    ]
    notes = [f"OTLP spread over rounds (spans/s): ingest {spread(ingest)}, decode {spread(decode)}"]
    return figures, notes


def memory_rows(sessions: int) -> tuple[list[Figure], list[str]]:
    rt = _runtime()

    def one(n: int) -> Any:
        s = rt.session(workflow="password-reset", principal="user-1042")
        s.llm_call("gpt-4o-mini", input_tokens=1200, output_tokens=300)
        with s.tool_call("kb_search", {"query": f"locked account {n}"}) as call:
            call.output = "reset link"
        return s

    one(-1).summary()
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    kept = [one(n) for n in range(sessions)]
    gc.collect()
    per_session = (tracemalloc.get_traced_memory()[0] - base) / sessions
    tracemalloc.stop()
    page = kept[:100]
    clock = Clock()
    for s in page:
        s.summary()  # cold: built
    cold = clock.read()[1] / len(page) * 1e6
    clock = Clock()
    for s in page:
        s.summary()  # unchanged: from the runtime's SummaryCache
    warm = clock.read()[1] / len(page) * 1e6
    figures = [
        Figure(
            "live-session memory (tracemalloc)",
            per_session,
            "B",
            max_value=3 * 1024,
        ),
        Figure(
            "session summary, built (snapshot cost)",
            cold,
            baseline=warm,
            baseline_name="from the summary cache",
        ),
    ]
    return figures, [f"{sessions:,} live sessions with an LLM call and a tool call each"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=150, help="runs per measure per round")
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--strict", action="store_true", help="exit 1 when a row is NOT OK")
    args = parser.parse_args()
    figures: list[Figure] = []
    notes: list[str] = []
    for rows in (
        lambda: processor_rows(args.rounds, args.runs),
        lambda: otlp_rows(args.rounds, args.runs),
        lambda: memory_rows(args.sessions),
    ):
        got, said = rows()
        figures += got
        notes += said
    ok = print_table(
        f"OpenTelemetry in: median of {args.rounds} round medians, {args.runs} runs per measure",
        figures,
    )
    for note in notes:
        print("  " + note)
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    raise SystemExit(main())
