"""The guard on one tool call against what its parts allow (issue 12, target 1).

Every figure is a median of per-round medians, and each ratio is taken within a round
(project and baseline measured back to back), so load from other processes on a shared
box moves both sides alike. Rows:

- guard per tool call with no policy vs a bare Python call of the tool body;
- guard with the reference Cedar policy vs a raw `cedarpy.is_authorized` with a cached
  `Entities` handle (the target), and vs one with the entities as a list;
- the guard's Cedar evaluation (`policy.evaluate`) vs the same raw call;
- Cedar's decision alone (its own `authz_duration_micros`).

Run: `.venv/bin/python bench/bench_guard.py [--rounds N] [--calls N]` (or `python -m bench`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cedarpy  # noqa: E402

from agentops_console.protocol.models import Budgets, BudgetUpdate  # noqa: E402
from agentops_console.runtime import Runtime, RuntimeConfig, ToolSpec  # noqa: E402
from agentops_console.runtime.session import Session  # noqa: E402
from bench.table import Figure, median_of_rounds, print_table  # noqa: E402

POLICY = (ROOT / "fixtures" / "policies" / "it-support.cedar").read_text()
TOOL = ToolSpec("kb_search", read_only=True, category="retrieval", corpus="it-kb")
#: Calls timed together: one perf_counter pair per batch, so a sub-µs baseline is not
#: mostly the timer's own cost.
BATCH = 25


def kb_search(query: str) -> str:
    """The tool body every row calls: as cheap as a real tool can be."""
    return query


def make_runtime(policy: str | None) -> Runtime:
    rt = Runtime(
        "bench",
        "1",
        tenant="acme",
        policy=policy,
        config=RuntimeConfig(budgets=Budgets(), spans_per_session=100),
        tools=[TOOL],
    )
    # Lift the policy's own stop conditions: the bench measures the guard, not a refusal.
    rt.set_budgets(
        BudgetUpdate(
            scope="agent", max_tool_calls=10_000_000, max_consecutive_tool_calls=10_000_000
        )
    )
    return rt


def timed(batches: int, run_batch: Callable[[int], None]) -> list[float]:
    """Per-call µs of each batch, in this thread's CPU time: what the agent's own thread
    pays, without the time another process held the core (the box is shared)."""
    samples: list[float] = []
    clock = time.thread_time_ns
    for b in range(batches):
        t0 = clock()
        run_batch(b)
        samples.append((clock() - t0) / BATCH / 1e3)
    return samples


def interleaved(batches: int, runs: dict[str, Callable[[int], None]]) -> dict[str, float]:
    """One round: a batch of each measure in turn, so a burst of load elsewhere lands on
    all of them alike; returns each measure's median per-call µs."""
    samples: dict[str, list[float]] = {name: [] for name in runs}
    clock = time.thread_time_ns
    for b in range(batches):
        for name, run in runs.items():
            t0 = clock()
            run(b)
            samples[name].append((clock() - t0) / BATCH / 1e3)
    return {name: statistics.median(values) for name, values in samples.items()}


def guard_batch(session: Session) -> Callable[[int], None]:
    def run(b: int) -> None:
        base = b * BATCH
        for i in range(base, base + BATCH):
            with session.tool_call("kb_search", {"query": f"q{i}"}) as call:
                call.output = kb_search(f"q{i}")
        session.steps.clear()  # every call is a new step: keep the retry table small

    return run


def bare_batch(b: int) -> None:
    base = b * BATCH
    for i in range(base, base + BATCH):
        kb_search(f"q{i}")


def raw_context(i: int) -> dict[str, Any]:
    return {
        "tenant": "acme",
        "workflow": "w",
        "arguments": {"query": f"q{i}"},
        "approved_change": False,
        "human_approved": False,
        "tool_calls": i,
        "consecutive_tool_calls": i,
        "retries": 0,
        "loops": 0,
        "session_cost_micro_usd": 0,
        "loop_cost_micro_usd": 0,
        "output_tokens": 0,
    }


def raw_batch(policy_set: Any, entities: Any, decisions: list[float]) -> Callable[[int], None]:
    """`cedarpy.is_authorized` as an application would call it, the answer read once."""

    def run(b: int) -> None:
        base = b * BATCH
        for i in range(base, base + BATCH):
            request = {
                "principal": {"type": "User", "id": "u"},
                "action": {"type": "Action", "id": "call_tool"},
                "resource": {"type": "Tool", "id": "kb_search"},
                "context": raw_context(i),
            }
            result = cedarpy.is_authorized(request, policy_set, entities)
            if not result.allowed:
                raise SystemExit(f"raw cedarpy denied the bench's request: {result.diagnostics}")
        decisions.append(result.metrics["authz_duration_micros"])

    return run


def evaluate_batch(rt: Runtime) -> Callable[[int], None]:
    policy = rt.policy
    assert policy is not None

    def run(b: int) -> None:
        base = b * BATCH
        for i in range(base, base + BATCH):
            policy.evaluate("u", "acme", TOOL, raw_context(i))

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=1500, help="calls per measure per round")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a row is NOT OK")
    args = parser.parse_args()
    batches = max(1, args.calls // BATCH)

    plain = make_runtime(None)
    cedar = make_runtime(POLICY)
    policy_set = cedarpy.PolicySet.from_str(POLICY)
    entity_list = [
        {"uid": {"type": "User", "id": "u"}, "attrs": {"tenant": "acme"}, "parents": []},
        TOOL.entity(),
    ]
    handle = cedarpy.Entities.from_json_str(json.dumps(entity_list))
    decisions: list[float] = []
    names = ("none", "bare", "cedar", "raw_handle", "raw_list", "evaluate")
    medians: dict[str, list[float]] = {n: [] for n in names}
    ratios: dict[str, list[float]] = {n: [] for n in ("none", "handle", "list", "evaluate")}
    with (
        plain.session(workflow="w", principal="u") as s_plain,
        cedar.session(workflow="w", principal="u") as s_cedar,
    ):
        runs: dict[str, Callable[[int], None]] = {
            "none": guard_batch(s_plain),
            "bare": bare_batch,
            "cedar": guard_batch(s_cedar),
            "raw_handle": raw_batch(policy_set, handle, decisions),
            "raw_list": raw_batch(policy_set, entity_list, []),
            "evaluate": evaluate_batch(cedar),
        }
        for run in runs.values():  # warm up: imports, caches, the entities handle
            timed(max(1, batches // 5), run)
        decisions.clear()
        for _ in range(args.rounds):
            got = interleaved(batches, runs)
            for name, value in got.items():
                medians[name].append(value)
            ratios["none"].append(got["none"] / got["bare"])
            ratios["handle"].append(got["cedar"] / got["raw_handle"])
            ratios["list"].append(got["cedar"] / got["raw_list"])
            ratios["evaluate"].append(got["evaluate"] / got["raw_handle"])
    plain.stop()
    cedar.stop()

    m = {name: median_of_rounds([[v] for v in values]) for name, values in medians.items()}
    r = {name: statistics.median(values) for name, values in ratios.items()}
    cedar_us = statistics.median(decisions)
    figures = [
        Figure(
            "guard per tool call, no policy",
            m["none"],
            baseline=m["bare"],
            baseline_name="bare call",
            ratio_override=r["none"],
            max_value=20,
        ),
        Figure(
            "guard per tool call, reference Cedar",
            m["cedar"],
            baseline=m["raw_handle"],
            baseline_name="raw cedarpy, Entities handle",
            ratio_override=r["handle"],
            max_ratio=1.3,
            max_value=50,
        ),
        Figure(
            "guard per tool call, reference Cedar",
            m["cedar"],
            baseline=m["raw_list"],
            baseline_name="raw cedarpy, entities list",
            ratio_override=r["list"],
        ),
        Figure(
            "policy.evaluate alone",
            m["evaluate"],
            baseline=m["raw_handle"],
            baseline_name="raw cedarpy, Entities handle",
            ratio_override=r["evaluate"],
            max_ratio=1.0,
        ),
        Figure(
            "Cedar's decision alone (authz_duration_micros)",
            cedar_us,
            baseline=m["raw_handle"],
            baseline_name="raw cedarpy, Entities handle",
        ),
    ]
    title = (
        f"guard per tool call: median of {args.rounds} round medians, "
        f"{batches * BATCH} calls per measure per round"
    )
    ok = print_table(title, figures)
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    raise SystemExit(main())
