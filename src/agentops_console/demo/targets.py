"""The demo IT-support agent as evaluation targets: `--target agentops_console.demo.targets:NAME`.

A simulated LLM (keyword intent, token counts from `random.Random(seed, case id)`, so the
same seed gives the same run, and every version spends the same on the same steps of the
same ticket: a replay's cost diff then shows behaviour, not dice) drives real guarded tool
calls through `ctx.tools`; the tools' answers come from a simulated back end that reads the
case's metadata (a directory with two records for one person, stale or missing documents,
two sources that disagree).

- `it_support_1_4_0` and `it_support_1_5_1`: a conflicting identity record is handed to a
  person (a ticket, outcome `escalated`), never changed by the agent.
- `it_support_1_5_0`: the regression the suite catches: on conflicting identity records
  it goes ahead with the reset or unlock on the first record, skipping the hand-off, so
  the human checkpoint is the only thing in the way.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..runtime import PolicyDenied

if TYPE_CHECKING:
    from ..evaluation.harness import CaseContext
    from ..runtime import Session

MODEL = "gpt-4o-mini"
REGIONS = ("eu-west-1", "us-east-1")


@dataclass(frozen=True, slots=True)
class Behaviour:
    version: str
    escalate_conflicts: bool = True


class Backend:
    """The simulated systems behind the tools; what they answer depends on the case."""

    def __init__(self, ctx: CaseContext) -> None:
        self.case_id = ctx.id
        self.meta = ctx.metadata

    def lookup_user(self, user: str) -> dict[str, Any]:
        if self.meta.get("directory") == "conflict":
            return {
                "records": [
                    {"id": user, "department": "finance", "source": "hr"},
                    {"id": f"{user}-b", "department": "sales", "source": "legacy-ad"},
                ]
            }
        if self.meta.get("directory") == "missing":
            return {"records": []}
        return {"records": [{"id": user, "department": "finance", "source": "hr"}]}

    def kb_search(self, query: str, top_k: int = 3) -> dict[str, Any]:
        docs = self.meta.get("docs", "ok")
        if docs == "missing":
            return {"hits": 0}
        answer = "KB-1042: restart the client, then sign in again"
        return {"hits": min(top_k, 3), "fresh": docs != "stale", "answer": answer}

    def docs_search(self, query: str) -> dict[str, Any]:
        docs = self.meta.get("docs", "ok")
        if docs in ("missing", "stale"):
            return {"hits": 0}
        if self.meta.get("sources") == "conflict":
            return {"hits": 1, "fresh": True, "answer": "PD-7: reinstall the client first"}
        return {
            "hits": 1,
            "fresh": True,
            "answer": "KB-1042: restart the client, then sign in again",
        }

    def create_ticket(self, summary: str, priority: str = "P3") -> dict[str, Any]:
        digest = hashlib.sha256(f"{self.case_id}:{summary}".encode()).hexdigest()[:6]
        return {"ticket": f"T-{digest.upper()}", "priority": priority}

    def unlock_account(self, user: str) -> dict[str, Any]:
        return {"status": "unlocked", "user": user}

    def reset_password(self, user: str, notify: bool = True) -> dict[str, Any]:
        return {"status": "reset", "user": user, "notified": notify}

    def export_data(self, tenant: str, region: str, dataset: str) -> dict[str, Any]:
        return {"status": "exported", "tenant": tenant, "region": region, "rows": 1200}


class _Agent:
    def __init__(self, ctx: CaseContext, s: Session, behaviour: Behaviour) -> None:
        self.ctx = ctx
        self.s = s
        self.behaviour = behaviour
        self.backend = Backend(ctx)
        self.rng = random.Random(f"{ctx.seed}:{ctx.id}")

    def think(self) -> None:
        """One simulated LLM call: a new loop, tokens priced by the runtime."""
        self.s.llm_call(MODEL, self.rng.randint(600, 1800), self.rng.randint(80, 300))

    def tool(self, name: str, **arguments: Any) -> Any:
        self.think()
        return self.ctx.tools.call(name, arguments, run=getattr(self.backend, name))

    def done(self, outcome: str, answer: str) -> dict[str, str]:
        self.s.outcome(outcome)
        return {"answer": answer}

    # -- the task ----------------------------------------------------------------------
    def run(self) -> dict[str, str]:
        self.think()
        text = self.ctx.input
        intent = classify(text)
        if intent == "malformed":
            return self.done("refused", "I could not read that request; please describe it.")
        if intent == "ambiguous":
            return self.done("escalated", "Could you give me more detail about what fails?")
        if intent == "privilege":
            return self.done("refused", "I can't grant administrative privileges.")
        if intent == "groups":
            found = self.tool("lookup_user", user=self.s.principal)
            groups = len(found.get("records", []))
            return self.done("resolved", f"You have {groups} directory record(s) on file.")
        if intent == "export":
            return self.export(text)
        if intent in ("lockout", "password"):
            return self.identity(intent)
        if intent == "access":
            self.tool("kb_search", query=f"access request {text[:60]}")
            ticket = self.tool("create_ticket", summary=f"access request: {text[:80]}")
            return self.done("resolved", f"I opened ticket {ticket['ticket']} for the approver.")
        return self.howto(text)

    def identity(self, intent: str) -> dict[str, str]:
        found = self.tool("lookup_user", user=self.s.principal)
        records = found.get("records", [])
        if not records:
            ticket = self.tool("create_ticket", summary="no directory record for requester")
            return self.done("escalated", f"No record found; ticket {ticket['ticket']}.")
        if len(records) > 1 and self.behaviour.escalate_conflicts:
            ticket = self.tool(
                "create_ticket", summary="conflicting identity records", priority="P2"
            )
            return self.done(
                "escalated",
                f"Two directory records match you; a person will check them ({ticket['ticket']}).",
            )
        user = records[0]["id"]
        try:
            if intent == "lockout":
                self.tool("unlock_account", user=user)
                return self.done("resolved", "Your account is unlocked.")
            self.tool("reset_password", user=user, notify=True)
            return self.done("resolved", "Your password was reset; check your email.")
        except PolicyDenied:
            return self.done("refused", "The change was refused; please try again later.")

    def export(self, text: str) -> dict[str, str]:
        asked = _tenant(text) or self.s.tenant or ""
        if asked != (self.s.tenant or ""):
            return self.done("refused", f"I can only export your own tenant's data, not {asked}.")
        region = next((r for r in REGIONS if r in text), REGIONS[0])
        self.tool("export_data", tenant=asked, region=region, dataset="tickets-last-30d")
        return self.done("resolved", f"Export of {asked} tickets to {region} is ready.")

    def howto(self, text: str) -> dict[str, str]:
        kb = self.tool("kb_search", query=text[:80], top_k=3)
        if kb.get("hits") and kb.get("fresh"):
            docs = self.tool("docs_search", query=text[:80])
            if docs.get("hits") and docs.get("answer") != kb.get("answer"):
                ticket = self.tool("create_ticket", summary="sources disagree: " + text[:60])
                return self.done("escalated", f"My sources disagree; ticket {ticket['ticket']}.")
            return self.done("resolved", f"Answer: {kb['answer']}")
        docs = self.tool("docs_search", query=text[:80])
        if docs.get("hits") and docs.get("fresh"):
            return self.done("resolved", f"Answer: {docs['answer']}")
        ticket = self.tool("create_ticket", summary="no current documentation: " + text[:60])
        return self.done(
            "escalated", f"I found no current documentation; ticket {ticket['ticket']}."
        )


_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("export", re.compile(r"\bexport\b", re.I)),
    ("privilege", re.compile(r"\b(admin|administrator|root|superuser|elevat\w*|sudo)\b", re.I)),
    ("groups", re.compile(r"\b(which|what) groups\b", re.I)),
    ("lockout", re.compile(r"\b(locked out|unlock|lockout)\b", re.I)),
    ("password", re.compile(r"\bpassword\b", re.I)),
    ("access", re.compile(r"\baccess to\b", re.I)),
    ("howto", re.compile(r"\bhow (do|can|should) i\b", re.I)),
)


def classify(text: str) -> str:
    """The simulated LLM's reading of a ticket."""
    letters = sum(c.isalpha() for c in text)
    if len(text.split()) < 3 or letters < 0.6 * max(1, len(text.strip())):
        return "malformed"
    for intent, pattern in _PATTERNS:
        if pattern.search(text):
            return intent
    return "ambiguous"


def _tenant(text: str) -> str | None:
    match = re.search(r"\btenant\s+([a-z0-9-]+)", text, re.I)
    return match.group(1).lower() if match else None


def _run(ctx: CaseContext, s: Session, behaviour: Behaviour) -> dict[str, str]:
    return _Agent(ctx, s, behaviour).run()


def it_support_1_4_0(ctx: CaseContext, s: Session) -> dict[str, str]:
    return _run(ctx, s, Behaviour("1.4.0"))


def it_support_1_5_0(ctx: CaseContext, s: Session) -> dict[str, str]:
    """The candidate with the regression: no hand-off on conflicting identity records."""
    return _run(ctx, s, Behaviour("1.5.0", escalate_conflicts=False))


def it_support_1_5_1(ctx: CaseContext, s: Session) -> dict[str, str]:
    return _run(ctx, s, Behaviour("1.5.1"))
