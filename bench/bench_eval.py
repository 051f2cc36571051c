"""Evaluation harness: cases/s for the 500-ticket it-support suite with --jobs 4 (target:
the whole suite in under 60 s), and the harness's own overhead per case against a bare
call of the same target (the same guarded runtime calls, no harness: no scheduling, no
approver round trip, no record building or scoring)."""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Any

from agentops_console.demo.targets import it_support_1_5_1
from agentops_console.evaluation.harness import CaseContext, ReleaseUnderTest, run_suite
from agentops_console.evaluation.suite import load_suite
from agentops_console.evaluation.tools import LiveTools, Toolbox
from agentops_console.governance.tomlfile import load_toml
from agentops_console.protocol.models import ApprovalDecision
from agentops_console.runtime import Runtime

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "fixtures" / "evals" / "it-support.toml"


def release() -> ReleaseUnderTest:
    answers = load_toml(ROOT / "fixtures" / "releases" / "it-support-1.5.1.toml")
    policy = (ROOT / "fixtures" / "policies" / "it-support.cedar").read_text()
    return ReleaseUnderTest("it-support", "1.5.1", policy, answers["tools"], "acme")


def bare(suite: Any, rel: ReleaseUnderTest) -> float:
    """Seconds for every case called directly, one after another, on one runtime whose
    checkpoints are approved inline (the cheapest possible "human")."""
    rt = Runtime("it-support", "1.5.1", tenant="acme", token="bench-token-0123456789",
                 policy=rel.policy, tools=rel.tool_specs())  # fmt: skip
    rt.config.approval_timeout_s = 5
    import threading

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
    provider = LiveTools()
    t0 = time.perf_counter()
    for case in suite.cases:
        with rt.session(case.workflow_name, case.principal, tenant=case.tenant) as s:
            it_support_1_5_1(CaseContext(case, Toolbox(s, case, provider), 7), s)
    elapsed = time.perf_counter() - t0
    stop.set()
    thread.join()
    rt.stop()
    return elapsed


def main() -> int:
    suite = load_suite(SUITE)
    rel = release()
    n = len(suite.cases)
    rows = []
    for jobs in (1, 4):
        t0 = time.perf_counter()
        run = run_suite(suite, it_support_1_5_1, rel, jobs=jobs, timeout_s=30)
        elapsed = time.perf_counter() - t0
        assert run.summary["passed"] == n, run.summary["taxonomy"]
        rows.append((jobs, elapsed))
    direct = bare(suite, rel)
    print(f"suite: {n} cases ({SUITE.name}), target it_support_1_5_1, 2 cores")
    print(f"{'measure':<44} {'result':>14} {'target':>10}")
    for jobs, elapsed in rows:
        print(f"{f'whole suite, --jobs {jobs}':<44} {elapsed:>12.2f} s {'< 60 s':>10}")
        print(f"{f'cases/s, --jobs {jobs}':<44} {n / elapsed:>14.0f}")
    print(f"{'bare calls of the target (sequential)':<44} {direct:>12.2f} s")
    per_harness = rows[0][1] / n * 1000
    per_bare = direct / n * 1000
    print(f"{'per case: harness --jobs 1 / bare':<44} {per_harness:>6.2f} / {per_bare:.2f} ms")
    print(f"{'harness overhead ratio (--jobs 1 / bare)':<44} {per_harness / per_bare:>14.2f}")
    return 0 if rows[-1][1] < 60 else 1


if __name__ == "__main__":
    sys.exit(main())
