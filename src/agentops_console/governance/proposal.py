"""What a release still needs after `release propose`: who must sign (each role, its
registered owner, where it stands) and the evaluation the rubric requires, so the person
who proposed it knows whom to ask and what to run next, not just a hash."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .db import GovernanceDB
from .releases import Release, role_states
from .rubric import Rubric


@dataclass(frozen=True, slots=True)
class Signer:
    role: str
    owner: str | None
    status: str  # a RoleStatus: approved, unsigned, no-owner, ...
    #: the owner wrote a revision of this release, so cannot sign it (separation of duties)
    is_author: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "owner": self.owner,
            "status": self.status,
            "owner_is_author": self.is_author,
        }


@dataclass(frozen=True, slots=True)
class EvaluationNeeded:
    suite: Path
    #: (metric, threshold as shown, kind of result: suite or replay)
    thresholds: tuple[tuple[str, str, str], ...]
    replay_min_sessions: int | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "suite": str(self.suite),
            "thresholds": [{"metric": m, "threshold": t, "kind": k} for m, t, k in self.thresholds],
            "replay_min_sessions": self.replay_min_sessions,
        }


@dataclass(frozen=True, slots=True)
class NextSteps:
    signers: tuple[Signer, ...]
    evaluation: EvaluationNeeded | None

    @property
    def to_sign(self) -> tuple[Signer, ...]:
        return tuple(s for s in self.signers if s.status != "approved")

    def as_dict(self) -> dict[str, Any]:
        return {
            "signoffs": [s.as_dict() for s in self.signers],
            "evaluation": self.evaluation.as_dict() if self.evaluation else None,
        }


def next_steps(gdb: GovernanceDB, release: Release, rubric: Rubric) -> NextSteps:
    authors = set(release.everyone_who_wrote_it)
    signers = tuple(
        Signer(s.role, s.owner, s.status, s.owner in authors)
        for s in role_states(gdb, release, rubric)
    )
    rule = rubric.evaluation
    wanted = rule.for_agent(release.agent, release.version) if rule else None
    if rule is None or wanted is None:
        return NextSteps(signers, None)
    kinds = {"suite"} | ({"replay"} if wanted.replay_min_sessions else set())
    thresholds = tuple((t.metric, t.text(), t.kind) for t in rule.thresholds if t.kind in kinds)
    return NextSteps(
        signers, EvaluationNeeded(wanted.suite, thresholds, wanted.replay_min_sessions)
    )
