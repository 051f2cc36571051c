"""Evaluation harness: cases/s for the 500-ticket it-support suite with --jobs 4 (target:
the whole suite in under 60 s), and the harness's own overhead per case against a bare
call of the same target (the same guarded runtime calls, no harness: no scheduling, no
approver round trip, no record building or scoring).

Replay (`--replay N`, default 10,000; 0 skips it): N recorded sessions, the 125 of
fixtures/evals/recorded/it-support-1.4.0.jsonl duplicated under new ids, through
it_support_1_5_1 with --jobs 4 (target: under 120 s), against a bare call of the target per
session with the recording's answers (per-session ratio; the bare calls run on one copy
of every tenth duplicate, so the bench stays short). The demo's simulated token counts
depend on the session id, so the copies cost differently from their recording: the check
compares counts (replayed, identical tool sequences, regressions other than cost), never
costs. Wall and CPU time are both shown: the box is shared.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agentops_console.demo.targets import it_support_1_5_1  # noqa: E402
from agentops_console.evaluation.harness import CaseContext, ReleaseUnderTest, run_suite  # noqa: E402
from agentops_console.evaluation.replay import ReplaySet, ReplayTools, case_for, run_replay  # noqa: E402
from agentops_console.evaluation.suite import load_suite  # noqa: E402
from agentops_console.evaluation.tools import LiveTools, Toolbox, ToolProvider  # noqa: E402
from agentops_console.governance.tomlfile import load_toml  # noqa: E402
from agentops_console.protocol.models import ApprovalDecision  # noqa: E402
from agentops_console.protocol.records import SessionRecord, load_jsonl  # noqa: E402
from agentops_console.runtime import Runtime  # noqa: E402
from bench.table import Figure, print_table  # noqa: E402

SUITE = ROOT / "fixtures" / "evals" / "it-support.toml"
RECORDED = ROOT / "fixtures" / "evals" / "recorded" / "it-support-1.4.0.jsonl"


def release() -> ReleaseUnderTest:
    answers = load_toml(ROOT / "fixtures" / "releases" / "it-support-1.5.1.toml")
    policy = (ROOT / "fixtures" / "policies" / "it-support.cedar").read_text()
    return ReleaseUnderTest("it-support", "1.5.1", policy, answers["tools"], "acme")


def bare(cases: Any, rel: ReleaseUnderTest, provider: ToolProvider | None = None) -> float:
    """Seconds for every case called directly, one after another, on one runtime whose
    checkpoints are approved inline (the cheapest possible "human")."""
    rt = Runtime("it-support", "1.5.1", tenant="acme", token="bench-token-0123456789",
                 policy=rel.policy, tools=rel.tool_specs())  # fmt: skip
    rt.config.approval_timeout_s = 5
    stop = threading.Event()

    def approve() -> None:
        seq = 0
        while not stop.is_set():
            batch = rt.events.wait_after(seq, 0.05)
            if batch:
                seq = batch[-1].seq
            for pending in rt.approvals.pending():
                with contextlib.suppress(ValueError):
                    rt.decide_approval(
                        pending.id, ApprovalDecision(decision="approve", operator="bench")
                    )

    thread = threading.Thread(target=approve, daemon=True)
    thread.start()
    provider = provider or LiveTools()
    t0 = time.perf_counter()
    for case in cases:
        # a replay answer may be an error the agent does not catch: the session fails
        with (
            contextlib.suppress(Exception),
            rt.session(case.workflow_name, case.principal, tenant=case.tenant) as s,
        ):
            it_support_1_5_1(CaseContext(case, Toolbox(s, case, provider), 7), s)
    elapsed = time.perf_counter() - t0
    stop.set()
    thread.join()
    rt.stop()
    return elapsed


def duplicated(n: int) -> list[SessionRecord]:
    """n recorded sessions: the fixture's, copied under new ids (`<id>~<copy>`)."""
    base = list(load_jsonl(RECORDED))
    return [
        r.model_copy(update={"session_id": f"{r.session_id}~{i // len(base):04d}"})
        for i, r in enumerate(base * -(-n // len(base)))
    ][:n]


def _counts(summary: dict[str, Any]) -> Counter[str]:
    """What a replay found, without anything cost-driven (see the module docstring)."""
    keep = Counter({k: v for k, v in summary["taxonomy"].items() if not k.startswith("cost")})
    keep["replayed"] = summary["cases"]
    keep["identical tool sequences"] = summary["cases"] - keep.get("drift:tools", 0)
    return keep


def replay_rows(n: int, rel: ReleaseUnderTest) -> list[Figure]:
    """Replay of n sessions with --jobs 4 against bare calls per session."""
    records = duplicated(n)
    one = run_replay(ReplaySet(records[:125], str(RECORDED)), it_support_1_5_1, rel, jobs=4)
    expected = Counter({k: v * n // 125 for k, v in _counts(one.summary).items()})
    replay_set = ReplaySet(records, f"{n} copies")
    wall0, cpu0 = time.perf_counter(), time.process_time()
    run = run_replay(replay_set, it_support_1_5_1, rel, jobs=4)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    got = _counts(run.summary)
    assert got == expected, f"replay counts {dict(got)} != {dict(expected)}"
    assert not {"crash", "timeout"} & set(run.run.summary["taxonomy"]), run.run.summary
    sample = records[::10]
    cases = [case_for(r, i) for i, r in enumerate(sample)]
    provider = ReplayTools({c.id: r for c, r in zip(cases, sample, strict=True)}, rel.catalog)
    bare_wall0, bare_cpu0 = time.perf_counter(), time.process_time()
    bare(cases, rel, provider)
    per_bare = (time.perf_counter() - bare_wall0) / len(sample) * 1000
    per_bare_cpu = (time.process_time() - bare_cpu0) / len(sample) * 1000
    print(
        f"replay: {n} sessions, {run.summary['identical']} identical to their recording,"
        f" {run.summary['material']} material ({dict(run.summary['taxonomy'])})"
    )
    return [
        Figure(f"replay {n} sessions, --jobs 4, wall", wall, "s", max_value=120),
        Figure(f"replay {n} sessions, CPU", cpu, "s"),
        Figure("replay per session, wall", wall / n * 1000, "ms", per_bare, "bare call"),
        Figure("replay per session, CPU", cpu / n * 1000, "ms", per_bare_cpu, "bare call"),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replay", type=int, default=10_000, help="sessions to replay (0: none)")
    args = parser.parse_args(argv)
    suite = load_suite(SUITE)
    rel = release()
    n = len(suite.cases)
    figures: list[Figure] = []
    for jobs in (1, 4):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        run = run_suite(suite, it_support_1_5_1, rel, jobs=jobs, timeout_s=30)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        assert run.summary["passed"] == n, run.summary["taxonomy"]
        figures.append(Figure(f"{n}-case suite, --jobs {jobs}, wall", wall, "s", max_value=60))
        figures.append(Figure(f"{n}-case suite, --jobs {jobs}, CPU", cpu, "s"))
        figures.append(Figure(f"cases/s, --jobs {jobs}", n / wall, "/s"))
        if jobs == 1:
            per_harness = wall / n * 1000
    direct = bare(suite.cases, rel)
    figures.append(
        Figure("per case, harness --jobs 1", per_harness, "ms", direct / n * 1000, "bare call")
    )
    if args.replay > 0:
        figures += replay_rows(args.replay, rel)
    title = f"bench_eval: suite {SUITE.name}, target it_support_1_5_1, 2 shared cores"
    return 0 if print_table(title, figures) else 1


if __name__ == "__main__":
    sys.exit(main())
