"""What a reviewer sees for each question: the author's answer beside the policy facts
that back (or contradict) it. Pure data, so the CLI and the console render it alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .policy_facts import PolicyFacts
from .releases import Release
from .rubric import Question, Rubric


@dataclass(frozen=True, slots=True)
class ReviewItem:
    question: Question
    answer: dict[str, Any]
    facts: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "question": self.question.id,
            "text": self.question.text,
            "answer": self.answer,
            "policy_facts": list(self.facts),
        }


def _fmt(value: float | int) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def backing_facts(question: Question, facts: PolicyFacts | None) -> tuple[str, ...]:
    if facts is None:
        return ("the policy could not be read",)
    if question.check == "tools":
        rows = [
            f"without approval: {', '.join(facts.tools_with('allowed')) or 'none'}",
            f"needs approval:   {', '.join(facts.tools_with('approval')) or 'none'}",
            f"always denied:    {', '.join(facts.tools_with('denied')) or 'none'}",
        ]
        rows += [f"approval rule: {r}" for r in facts.approval_rules]
        return tuple(rows)
    if question.check == "data":
        corpora = facts.readable_corpora()
        rows = [f"readable corpus {c} (via {t})" for c, t in sorted(corpora.items())]
        return tuple(rows or ["no retrieval tool may read any corpus"])
    if question.check == "budgets":
        rows = [f"@{k} = {_fmt(v)}" for k, v in sorted(facts.budgets.items())]
        rows += [f"stop: {k} = {_fmt(v)}" for k, v in sorted(facts.stop_conditions.items())]
        return tuple(rows or ["the policy sets no budgets or stop conditions"])
    if question.check == "rollback":
        return ("checked against runbooks/ and earlier releases that passed the gate",)
    return ()


def review_items(
    release: Release, rubric: Rubric, facts: PolicyFacts | None, role: str | None = None
) -> list[ReviewItem]:
    questions = rubric.questions_for(role) if role else rubric.questions
    return [ReviewItem(q, release.answer(q.id), backing_facts(q, facts)) for q in questions]
