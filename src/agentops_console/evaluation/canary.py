"""The canary verdict: live recorded sessions of a baseline and a candidate version,
compared with a significance test, and a plain promote / hold / roll back.

Per version: outcome rates, escalation rate, failure rate, the share of *materially bad*
sessions (outcome failed or unsafe, a denying policy decision, an unauthorized attempt, or
cost above `cost_multiple` times the baseline's median cost for the same workflow), cost
per successful (resolved) task, mean loop cost, and a failure taxonomy (outcomes other
than resolved, and flag kinds). Rates are compared with a two-sided two-proportion z-test,
or Fisher's exact test when an expected cell count is below 5 (standard library only).

Verdict, in this order:

- **insufficient**: either version has fewer than `min_sessions` ended sessions;
- **roll back**: the candidate is significantly worse (p < `alpha`) on success rate,
  failure rate or bad-session rate, or its cost per successful task is above
  `cost_multiple` times the baseline's;
- **hold**: not significantly worse, but a point estimate is: success rate lower or
  failure / bad-session rate higher by more than `tolerance` (absolute), or cost per
  successful task higher by more than 25 % — more traffic is needed to tell;
- **promote**: otherwise.

Canary material regressions per 1,000: the candidate's bad-session rate minus the
baseline's, times 1,000, never below 0 (sessions are not paired, so the excess is what the
candidate adds).
"""

from __future__ import annotations

import hashlib
import math
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..protocol.records import SessionRecord
from .metrics import rate
from .replay import DENYING, EVAL_PREFIX

DEFAULT_MIN_SESSIONS = 30
DEFAULT_ALPHA = 0.05
DEFAULT_TOLERANCE = 0.02


# -- tests ---------------------------------------------------------------------------------
def z_test(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided p-value of the pooled two-proportion z-test."""
    if n1 == 0 or n2 == 0:
        return 1.0
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = (k1 / n1 - k2 / n2) / se
    return math.erfc(abs(z) / math.sqrt(2))


def fisher_exact(a: int, b: int, c: int, d: int) -> float:
    """Two-sided p-value of Fisher's exact test on [[a, b], [c, d]]: the sum of the
    probabilities of every table with the same margins no more likely than this one."""
    row1, col1, n = a + b, a + c, a + b + c + d
    if n == 0:
        return 1.0
    total = math.comb(n, col1)

    def p(x: int) -> float:
        return math.comb(row1, x) * math.comb(n - row1, col1 - x) / total

    observed = p(a)
    low, high = max(0, col1 - (n - row1)), min(row1, col1)
    return min(1.0, sum(q for x in range(low, high + 1) if (q := p(x)) <= observed * (1 + 1e-7)))


def compare_rates(k1: int, n1: int, k2: int, n2: int) -> tuple[float, str]:
    """(p-value, test name): Fisher's exact when an expected count is under 5."""
    total, hits = n1 + n2, k1 + k2
    if total == 0:
        return 1.0, "none"
    expected = [n * hits / total for n in (n1, n2)] + [n * (total - hits) / total for n in (n1, n2)]
    if min(expected) < 5:
        return fisher_exact(k1, n1 - k1, k2, n2 - k2), "fisher"
    return z_test(k1, n1, k2, n2), "z"


# -- per version ---------------------------------------------------------------------------
@dataclass(slots=True)
class VersionStats:
    version: str
    n: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    bad: int = 0
    cost_usd: float = 0.0
    loop_costs: list[float] = field(default_factory=list)
    taxonomy: Counter[str] = field(default_factory=Counter)

    @property
    def resolved(self) -> int:
        return self.outcomes["resolved"]

    @property
    def failed(self) -> int:
        return self.outcomes["failed"] + self.outcomes["unsafe"]

    @property
    def cost_per_success(self) -> float | None:
        return self.cost_usd / self.resolved if self.resolved else None

    def as_dict(self) -> dict[str, Any]:
        loop = statistics.fmean(self.loop_costs) if self.loop_costs else None
        return {
            "version": self.version,
            "sessions": self.n,
            "outcomes": dict(self.outcomes.most_common()),
            "success_rate": rate(self.resolved, self.n).as_dict(),
            "escalation_rate": rate(self.outcomes["escalated"], self.n).as_dict(),
            "failure_rate": rate(self.failed, self.n).as_dict(),
            "bad_session_rate": rate(self.bad, self.n).as_dict(),
            "cost_per_successful_task_usd": self.cost_per_success,
            "mean_loop_cost_usd": loop,
            "taxonomy": dict(self.taxonomy.most_common()),
        }


def _median_costs(records: Sequence[SessionRecord]) -> dict[str, float]:
    by: dict[str, list[float]] = {}
    for r in records:
        by.setdefault(r.workflow, []).append(r.cost_usd)
    return {w: statistics.median(c) for w, c in by.items()}


def _reasons(r: SessionRecord, medians: dict[str, float], multiple: float) -> list[str]:
    out: list[str] = []
    if r.final_outcome in ("failed", "unsafe"):
        out.append(f"outcome:{r.final_outcome}")
    if any(s.policy_decision in DENYING for s in r.spans):
        out.append("policy_denial")
    if r.counters.unauthorized_attempts:
        out.append("unauthorized_attempt")
    median = medians.get(r.workflow)
    if median and r.cost_usd > multiple * median:
        out.append("cost")
    return out


def stats(
    version: str, records: Sequence[SessionRecord], medians: dict[str, float], multiple: float
) -> VersionStats:
    out = VersionStats(version)
    for r in records:
        out.n += 1
        out.outcomes[r.final_outcome] += 1
        out.cost_usd += r.cost_usd
        if r.counters.loops:
            out.loop_costs.append(r.cost_usd / r.counters.loops)
        reasons = _reasons(r, medians, multiple)
        out.bad += bool(reasons)
        out.taxonomy.update(reasons)
        if r.final_outcome not in ("resolved", "failed", "unsafe"):  # those are in reasons
            out.taxonomy[f"outcome:{r.final_outcome}"] += 1
        out.taxonomy.update({f"flag:{f.kind}" for f in r.flags})
    return out


# -- the verdict ---------------------------------------------------------------------------
@dataclass(slots=True)
class Canary:
    agent: str
    baseline: VersionStats
    candidate: VersionStats
    verdict: str  # promote | hold | roll back | insufficient
    why: str
    tests: dict[str, dict[str, Any]]
    per_1000: float | None
    sha256: str
    min_sessions: int

    @property
    def summary(self) -> dict[str, Any]:
        """The stored metrics: the gate reads `suite.material_regressions_per_1000` and
        `verdict`."""
        n = self.candidate.n
        return {
            "cases": n,
            "passed": n - self.candidate.bad,
            "verdict": self.verdict,
            "why": self.why,
            "baseline": self.baseline.as_dict(),
            "candidate": self.candidate.as_dict(),
            "tests": self.tests,
            "min_sessions": self.min_sessions,
            "suite": {
                "material_regressions_per_1000": {
                    "value": self.per_1000,
                    "n": n,
                    "unit": "per_1000",
                }
            },
            "taxonomy": dict(self.candidate.taxonomy.most_common()),
        }


def live_only(records: Iterable[SessionRecord]) -> list[SessionRecord]:
    """Ended production sessions: not running, not made by the evaluation harness."""
    return [r for r in records if r.final and not r.session_id.startswith(EVAL_PREFIX)]


def compare(
    agent: str,
    baseline_version: str,
    candidate_version: str,
    baseline: Sequence[SessionRecord],
    candidate: Sequence[SessionRecord],
    *,
    min_sessions: int = DEFAULT_MIN_SESSIONS,
    alpha: float = DEFAULT_ALPHA,
    tolerance: float = DEFAULT_TOLERANCE,
    cost_multiple: float = 2.0,
) -> Canary:
    medians = _median_costs(baseline)
    base = stats(baseline_version, baseline, medians, cost_multiple)
    cand = stats(candidate_version, candidate, medians, cost_multiple)
    digest = hashlib.sha256()
    for r in sorted([*baseline, *candidate], key=lambda r: (r.agent_version, r.session_id)):
        digest.update(
            f"{r.agent_version}\t{r.session_id}\t{r.last_event_at.isoformat()}\n".encode()
        )
    tests: dict[str, dict[str, Any]] = {}
    # (metric, baseline k, candidate k, higher is worse)
    for name, kb, kc, worse_up in (
        ("success_rate", base.resolved, cand.resolved, False),
        ("failure_rate", base.failed, cand.failed, True),
        ("bad_session_rate", base.bad, cand.bad, True),
        ("escalation_rate", base.outcomes["escalated"], cand.outcomes["escalated"], True),
    ):
        p, test = compare_rates(kb, base.n, kc, cand.n)
        rb = kb / base.n if base.n else 0.0
        rc = kc / cand.n if cand.n else 0.0
        worse = rc > rb if worse_up else rc < rb
        tests[name] = {
            "baseline": round(rb, 4),
            "candidate": round(rc, 4),
            "p_value": float(f"{p:.4g}"),
            "test": test,
            "worse": worse,
        }
    per_1000 = None
    if base.n and cand.n:
        per_1000 = round(max(0.0, cand.bad / cand.n - base.bad / base.n) * 1000, 3)
    verdict, why = _verdict(base, cand, tests, min_sessions, alpha, tolerance, cost_multiple)
    return Canary(
        agent, base, cand, verdict, why, tests, per_1000, digest.hexdigest(), min_sessions
    )


def _verdict(
    base: VersionStats,
    cand: VersionStats,
    tests: dict[str, dict[str, Any]],
    min_sessions: int,
    alpha: float,
    tolerance: float,
    cost_multiple: float,
) -> tuple[str, str]:
    if base.n < min_sessions or cand.n < min_sessions:
        return "insufficient", (
            f"too few sessions to decide: baseline {base.version} {base.n}, candidate "
            f"{cand.version} {cand.n}, at least {min_sessions} each needed"
        )

    def show(name: str) -> str:
        t = tests[name]
        return (
            f"{name} {t['baseline'] * 100:.1f} % -> {t['candidate'] * 100:.1f} % "
            f"(p={t['p_value']:.3g}, {t['test']})"
        )

    gating = ("success_rate", "failure_rate", "bad_session_rate")
    significant = [n for n in gating if tests[n]["worse"] and tests[n]["p_value"] < alpha]
    cost_b, cost_c = base.cost_per_success, cand.cost_per_success
    if significant:
        return "roll back", "significantly worse: " + "; ".join(show(n) for n in significant)
    if cost_b and cost_c and cost_c > cost_multiple * cost_b:
        return "roll back", (
            f"cost per successful task ${cost_b:.4f} -> ${cost_c:.4f} "
            f"(over {cost_multiple:g}x the baseline)"
        )
    leaning = [
        n
        for n in gating
        if tests[n]["worse"] and abs(tests[n]["candidate"] - tests[n]["baseline"]) > tolerance
    ]
    if cost_b and cost_c and cost_c > 1.25 * cost_b:
        leaning.append("cost")
    if leaning:
        parts = [show(n) if n in tests else f"cost ${cost_b:.4f} -> ${cost_c:.4f}" for n in leaning]
        return "hold", "worse but not significantly (more canary traffic needed): " + "; ".join(
            parts
        )
    return "promote", "no worse on any gating rate: " + "; ".join(show(n) for n in gating)
