"""Deployment rubrics (rubrics/*.toml): the questions a release answers and who signs them."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import BadInput, NotFound
from .names import ROLES
from .tomlfile import load_toml

_RUBRIC_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
FIELD_TYPES = ("str", "int", "number", "bool", "list[str]")
CHECKS = ("tools", "data", "budgets", "rollback", "none")


@dataclass(frozen=True, slots=True)
class Question:
    id: str
    title: str
    text: str
    roles: tuple[str, ...]
    fields: dict[str, str]
    check: str = "none"

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "text": self.text,
            "roles": list(self.roles),
            "fields": dict(self.fields),
            "check": self.check,
        }


#: Metrics an `[evaluation]` threshold may name, by the kind of result that measures them
#: (docs/evaluation.md). `suite` results come from `agentops eval run`; `replay` results from
#: `agentops eval replay` and `agentops eval compare --release` (canary).
EVALUATION_METRICS: dict[str, str] = {
    "task_success_rate": "suite",
    "refusal_accuracy": "suite",
    "false_refusal_rate": "suite",
    "tool_call_precision": "suite",
    "tool_call_recall": "suite",
    "policy_adherence_high_risk": "suite",
    "unauthorized_attempt_rate": "suite",
    "unauthorized_attempt_rate_red_team": "suite",
    "escalation_rate": "suite",
    "cost_per_successful_task_usd": "suite",
    "mean_loop_cost_usd": "suite",
    "tool_calls_per_session": "suite",
    "material_regressions_per_1000": "replay",
}
COMPARATORS = {"at_least": "≥", "at_most": "≤", "below": "<", "above": ">"}


def show_value(metric: str, value: float) -> str:
    """A metric's value as a reviewer reads it: rates in %, money in $."""
    if metric.endswith("_usd"):
        return f"${value:.4f}"
    if "_rate" in metric or metric.endswith(("_accuracy", "_precision", "_recall", "_risk")):
        return f"{value * 100:.1f} %"
    return f"{value:g}"


@dataclass(frozen=True, slots=True)
class Threshold:
    metric: str
    op: str  # a key of COMPARATORS
    value: float

    def holds(self, measured: float) -> bool:
        if self.op == "at_least":
            return measured >= self.value
        if self.op == "at_most":
            return measured <= self.value
        if self.op == "below":
            return measured < self.value
        return measured > self.value

    @property
    def kind(self) -> str:
        return EVALUATION_METRICS[self.metric]

    def text(self) -> str:
        return f"{COMPARATORS[self.op]} {show_value(self.metric, self.value)}"


@dataclass(frozen=True, slots=True)
class AgentEvaluation:
    """Which suite an agent's releases must pass, from which version on."""

    suite: Path
    from_version: str | None = None
    #: a replay result of at least this many sessions is required (None: not required)
    replay_min_sessions: int | None = None


@dataclass(frozen=True, slots=True)
class EvaluationRule:
    thresholds: tuple[Threshold, ...]
    agents: dict[str, AgentEvaluation]
    #: replay: a session costing more than this multiple of its recording regresses
    replay_cost_multiple: float = 2.0

    def for_agent(self, agent: str, version: str) -> AgentEvaluation | None:
        """The requirement on this release, or None when the rubric asks none of it."""
        found = self.agents.get(agent)
        if found is None:
            return None
        if found.from_version and version_key(version) < version_key(found.from_version):
            return None
        return found

    def as_dict(self) -> dict[str, Any]:
        return {
            "thresholds": {t.metric: {t.op: t.value} for t in self.thresholds},
            "replay_cost_multiple": self.replay_cost_multiple,
            "agents": {
                name: {
                    "suite": str(a.suite),
                    "from_version": a.from_version,
                    "replay_min_sessions": a.replay_min_sessions,
                }
                for name, a in sorted(self.agents.items())
            },
        }


def version_key(version: str) -> tuple[int, ...]:
    """Numeric parts of a version, for "from this version on" (1.10.0 after 1.9.2)."""
    return tuple(int(p) for p in re.findall(r"\d+", version))


def _evaluation(raw: Any, where: str, root: Path) -> EvaluationRule | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise BadInput(f"{where}: [evaluation] must be a table")
    unknown = sorted(set(raw) - {"thresholds", "agents", "replay_cost_multiple"})
    if unknown:
        raise BadInput(f"{where}: [evaluation] unknown key {unknown[0]!r}")
    thresholds: list[Threshold] = []
    for metric, rule in (raw.get("thresholds") or {}).items():
        if metric not in EVALUATION_METRICS:
            raise BadInput(
                f"{where}: [evaluation.thresholds] unknown metric {metric!r} "
                f"(one of {', '.join(EVALUATION_METRICS)})"
            )
        ok = isinstance(rule, dict) and len(rule) == 1 and next(iter(rule)) in COMPARATORS
        value = next(iter(rule.values())) if ok else None
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not math.isfinite(value)
        ):
            raise BadInput(
                f"{where}: [evaluation.thresholds] {metric} must be one of "
                f"{{ at_least | at_most | below | above = NUMBER }}"
            )
        thresholds.append(Threshold(metric, next(iter(rule)), float(value)))
    agents: dict[str, AgentEvaluation] = {}
    for name, spec in (raw.get("agents") or {}).items():
        suite = spec.get("suite") if isinstance(spec, dict) else None
        since = spec.get("from_version") if isinstance(spec, dict) else None
        replay = spec.get("replay_min_sessions") if isinstance(spec, dict) else None
        extra = (
            sorted(set(spec) - {"suite", "from_version", "replay_min_sessions"})
            if (isinstance(spec, dict))
            else []
        )
        if (
            not isinstance(suite, str)
            or not suite
            or not isinstance(since, str | None)
            or extra
            or not (replay is None or (type(replay) is int and replay >= 1))
        ):
            raise BadInput(
                f"{where}: [evaluation.agents.{name}] needs suite = PATH (and optionally "
                "from_version = VERSION, replay_min_sessions = N >= 1)"
            )
        path = Path(suite)
        agents[name] = AgentEvaluation(path if path.is_absolute() else root / path, since, replay)
    multiple = raw.get("replay_cost_multiple", 2.0)
    if (
        not isinstance(multiple, int | float)
        or isinstance(multiple, bool)
        or not math.isfinite(multiple)
        or multiple < 1
    ):
        raise BadInput(f"{where}: [evaluation] replay_cost_multiple must be a number >= 1")
    return EvaluationRule(tuple(thresholds), agents, float(multiple))


@dataclass(frozen=True, slots=True)
class Rubric:
    name: str
    title: str
    signoff_valid_days: int
    questions: tuple[Question, ...]
    path: Path
    #: behavioural evidence the gate requires (None: the rubric asks none)
    evaluation: EvaluationRule | None = None

    @property
    def roles(self) -> tuple[str, ...]:
        """Every role that must sign, in the canonical role order."""
        used = {r for q in self.questions for r in q.roles}
        return tuple(r for r in ROLES if r in used)

    def questions_for(self, role: str) -> tuple[Question, ...]:
        return tuple(q for q in self.questions if role in q.roles)

    def question(self, qid: str) -> Question | None:
        return next((q for q in self.questions if q.id == qid), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "signoff_valid_days": self.signoff_valid_days,
            "roles": list(self.roles),
            "questions": [q.as_dict() for q in self.questions],
            "path": str(self.path),
            "evaluation": self.evaluation.as_dict() if self.evaluation else None,
        }


def _question(raw: Any, where: str) -> Question:
    if not isinstance(raw, dict):
        raise BadInput(f"{where}: each [[questions]] entry must be a table")
    qid = raw.get("id")
    text = raw.get("text")
    if not isinstance(qid, str) or not qid or not isinstance(text, str) or not text:
        raise BadInput(f"{where}: a question needs a string `id` and `text`")
    roles = raw.get("roles")
    if not isinstance(roles, list) or not roles or not all(isinstance(r, str) for r in roles):
        raise BadInput(f"{where}: question {qid} needs `roles`, a non-empty list of roles")
    for role in roles:
        if role not in ROLES:
            raise BadInput(f"{where}: question {qid}: unknown role {role!r}")
    fields = raw.get("fields", {})
    if not isinstance(fields, dict):
        raise BadInput(f"{where}: question {qid}: `fields` must be a table")
    for fname, ftype in fields.items():
        if ftype not in FIELD_TYPES:
            raise BadInput(
                f"{where}: question {qid}: field {fname} has unknown type {ftype!r}; "
                f"use one of {', '.join(FIELD_TYPES)}"
            )
    check = raw.get("check", "none")
    if check not in CHECKS:
        raise BadInput(f"{where}: question {qid}: unknown check {check!r}")
    return Question(
        id=qid,
        title=str(raw.get("title", qid)),
        text=text,
        roles=tuple(roles),
        fields={str(k): str(v) for k, v in fields.items()},
        check=str(check),
    )


def load_rubric(path: Path) -> Rubric:
    data = load_toml(path)
    where = str(path)
    raw_questions = data.get("questions")
    if not isinstance(raw_questions, list) or not raw_questions:
        raise BadInput(f"{where}: a rubric needs at least one [[questions]] entry")
    questions = tuple(_question(q, where) for q in raw_questions)
    ids = [q.id for q in questions]
    if len(set(ids)) != len(ids):
        raise BadInput(f"{where}: question ids must be unique")
    days = data.get("signoff_valid_days", 90)
    if not isinstance(days, int) or isinstance(days, bool) or days <= 0:
        raise BadInput(f"{where}: signoff_valid_days must be a positive integer")
    return Rubric(
        name=str(data.get("name", path.stem)),
        title=str(data.get("title", path.stem)),
        signoff_valid_days=days,
        questions=questions,
        path=path,
        # suite paths are relative to the project: the directory that holds rubrics/
        evaluation=_evaluation(data.get("evaluation"), where, path.resolve().parent.parent),
    )


def list_rubrics(directory: Path) -> list[Rubric]:
    if not directory.is_dir():
        raise NotFound(f"no rubrics directory at {directory}")
    return [load_rubric(p) for p in sorted(directory.glob("*.toml"))]


def find_rubric(directory: Path, name: str = "deployment") -> Rubric:
    """A rubric by its bare name: a path (`../elsewhere/weak`) is not a rubric name."""
    from .names import shown

    if not isinstance(name, str) or not _RUBRIC_NAME.match(name):
        raise BadInput(f"invalid rubric name {shown(name)}: a name from `agentops rubric list`")
    path = directory / f"{name}.toml"
    if not path.is_file():
        raise NotFound(f"unknown rubric {name!r} (no {path})")
    return load_rubric(path)


_TYPE_WORDS = {
    "str": "a non-empty string",
    "int": "a whole number >= 0",
    "number": "a finite number >= 0",
    "bool": "true or false",
    "list[str]": "a list of strings",
}


def _type_ok(value: Any, ftype: str) -> bool:
    if ftype == "str":
        return isinstance(value, str) and bool(value.strip())
    if ftype == "int":
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0
    if ftype == "number":  # nan compares false with everything, so it would pass the gate
        return (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and value >= 0
        )
    if ftype == "bool":
        return isinstance(value, bool)
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


#: Top-level keys an answers file may have besides one table per question.
ANSWER_EXTRAS = ("agent", "version", "rubric", "tools")


def answer_problems(rubric: Rubric, answers: dict[str, Any]) -> list[str]:
    """Everything structurally wrong with an answers document (empty when valid)."""
    problems: list[str] = []
    known = {q.id for q in rubric.questions}
    for key in answers:
        if key not in known and key not in ANSWER_EXTRAS:
            problems.append(f"unknown section [{key}] (questions: {', '.join(sorted(known))})")
    for q in rubric.questions:
        answer = answers.get(q.id)
        if not isinstance(answer, dict):
            problems.append(f"[{q.id}] missing: answer {q.text!r}")
            continue
        for fname, ftype in q.fields.items():
            if fname not in answer:
                problems.append(f"[{q.id}] missing field {fname} ({ftype})")
            elif not _type_ok(answer[fname], ftype):
                problems.append(f"[{q.id}] {fname} must be {_TYPE_WORDS[ftype]}")
    tools = answers.get("tools", {})
    if not isinstance(tools, dict) or not all(isinstance(v, dict) for v in tools.values()):
        problems.append("[tools] must hold one table per tool, e.g. [tools.kb_search]")
    else:
        for name, attrs in tools.items():
            problems += [f"[tools.{name}] {p}" for p in _tool_problems(attrs)]
    return problems


#: What a tool's attributes must be; the policy sees them, so `read_only = "false"` (a
#: non-empty string, hence true) must not slip through as a boolean.
TOOL_FIELDS = {
    "read_only": "bool",
    "customer_facing": "bool",
    "category": "str",
    "corpus": "str",
    "region": "str",
}


def _tool_problems(attrs: dict[str, Any]) -> list[str]:
    problems = [
        f"{key} must be {_TYPE_WORDS[ftype]}"
        for key, ftype in TOOL_FIELDS.items()
        if key in attrs and not _type_ok(attrs[key], ftype)
    ]
    if "example_arguments" in attrs and not isinstance(attrs["example_arguments"], dict):
        problems.append("example_arguments must be a table")
    return problems
