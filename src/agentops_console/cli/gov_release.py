"""`agentops rubric ...`, `release ...` and `signoff`: the deployment rubric, releases,
the gate used in CI, and the sign-off review used in release meetings."""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .common import ExitCode, command_group, confirm_or_yes, emit_json, fail, is_interactive, say
from .gov_common import (
    AgentAlias,
    AgentArg,
    AsOpt,
    DbOpt,
    JsonOpt,
    actor,
    gov_errors,
    one_agent,
    open_gdb,
    out,
    rubric,
    runbooks_path,
    table,
)

if TYPE_CHECKING:
    from ..governance.gate import GateResult
    from ..governance.proposal import NextSteps
    from ..governance.releases import Release

rubric_app = command_group("Deployment rubrics: the questions a release must answer.")
release_app = command_group("Releases: propose, review state, the CI gate, promote.")

RubricOpt = Annotated[str, typer.Option("--rubric", help="Rubric name (rubrics/NAME.toml).")]


@rubric_app.command("list")
def rubric_list(json_: JsonOpt = False) -> None:
    """Rubrics available (rubrics/*.toml)."""
    with gov_errors():
        from ..governance.paths import rubrics_dir
        from ..governance.rubric import list_rubrics

        found = list_rubrics(rubrics_dir())
        if json_:
            emit_json([r.as_dict() for r in found])
            return
        rows = [
            [r.name, len(r.questions), ",".join(r.roles), r.signoff_valid_days, r.title]
            for r in found
        ]
        out(table(rows, ["RUBRIC", "QUESTIONS", "ROLES", "VALID DAYS", "TITLE"]))


@rubric_app.command("show")
def rubric_show(
    name: Annotated[str, typer.Argument(help="Rubric name.")] = "deployment",
    json_: JsonOpt = False,
) -> None:
    """The questions, who signs each, and the fields an answer must contain."""
    with gov_errors():
        found = rubric(name)
        if json_:
            emit_json(found.as_dict())
            return
        out(f"{found.title} ({found.name}); sign-offs valid {found.signoff_valid_days} days")
        for q in found.questions:
            out(f"\n[{q.id}] {q.text}")
            out(f"  signed by: {', '.join(q.roles)}")
            for fname, ftype in q.fields.items():
                out(f"  {fname} = {ftype}")


@release_app.command("propose")
def release_propose(
    agent: str,
    version: str,
    answers: Annotated[Path, typer.Option(help="Answers to the rubric (TOML).")],
    policy: Annotated[Path, typer.Option(help="The Cedar policy bundle for this release.")],
    author: Annotated[str, typer.Option(help="Who wrote the answers (cannot sign them).")],
    rubric_name: RubricOpt = "deployment",
    db: DbOpt = None,
    as_: AsOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Record a release and its content hash (a changed proposal makes sign-offs stale);
    say who must sign it and what the rubric requires next."""
    with gov_errors():
        from ..governance.proposal import next_steps
        from ..governance.releases import propose
        from ..governance.tomlfile import load_toml, read_text

        spec = rubric(rubric_name)
        answers_doc = load_toml(answers)
        policy_text = read_text(policy)
        with open_gdb(db) as gdb:
            release, outcome = propose(
                gdb,
                actor=actor(as_),
                agent=agent,
                version=version,
                answers=answers_doc,
                policy=policy_text,
                author=author,
                rubric=spec,
                answers_origin=str(answers),
                policy_origin=str(policy),
            )
            upcoming = next_steps(gdb, release, spec)
        if json_:
            emit_json({**release.as_dict(), "outcome": outcome, "next": upcoming.as_dict()})
        else:
            _show_proposal(release, outcome, upcoming)


def _show_proposal(release: "Release", outcome: str, upcoming: "NextSteps") -> None:
    """What was proposed and what comes next: who signs, what to evaluate, then the gate."""
    agent, version = release.agent, release.version
    what = {"created": "proposed", "revised": "revised", "unchanged": "unchanged"}[outcome]
    out(
        f"{agent} {version} {what}: revision {release.revision}, rubric {release.rubric},"
        f" content hash {release.content_hash[:12]}"
    )
    if outcome == "revised":
        out("  earlier sign-offs and evaluations are stale: they were for other content")
    if upcoming.to_sign:
        out(f"next, sign-offs: agentops signoff {agent} {version} --as PERSON")
        for s in upcoming.signers:
            if s.owner is None:
                who = f"(no owner: agentops owner set {agent} {s.role} PERSON)"
            elif s.is_author:
                who = f"{s.owner} (an author of this release: cannot sign; set another owner)"
            else:
                who = s.owner
            out(f"  {s.role:<11} {s.status:<9} {who}")
    else:
        out("sign-offs: every role has approved this content")
    if upcoming.evaluation is not None:
        ev = upcoming.evaluation
        out(
            f"evaluation the rubric requires: agentops eval run {_shown_path(ev.suite)}"
            f" --release {agent} {version} --target MODULE:FUNCTION"
        )
        if ev.replay_min_sessions:
            out(f"  and a replay of at least {ev.replay_min_sessions} recorded sessions")
        for metric, threshold, _ in ev.thresholds:
            out(f"  {metric:<36} {threshold}")
    target = f"{agent} {version}"
    out(f"then: agentops release check {target}; agentops release promote {target}")


def _shown_path(path: Path) -> str:
    """A suite path as the person would type it: relative to here when it is below here."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@release_app.command("list")
def release_list(
    agent: AgentArg = None,
    agent_alias: AgentAlias = None,
    db: DbOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Releases and their status."""
    with gov_errors():
        from ..governance.releases import list_releases

        agent = one_agent(agent, agent_alias)  # a removed agent's releases stay listed
        with open_gdb(db) as gdb:
            found = list_releases(gdb, agent)
        if json_:
            emit_json([r.as_dict() for r in found])
            return
        rows = [
            [
                r.agent,
                r.version,
                r.status,
                r.revision,
                r.author,
                r.content_hash[:12],
                r.created_at[:19],
            ]
            for r in found
        ]
        out(table(rows, ["AGENT", "VERSION", "STATUS", "REV", "AUTHOR", "HASH", "PROPOSED"]))


def _check(db: Path | None, agent: str, version: str, rubric_name: str, who: str) -> "GateResult":
    import sqlite3

    from ..governance.errors import KeyProblem, ReadOnly
    from ..governance.gate import check, record_pass
    from ..governance.releases import get_release

    spec = rubric(rubric_name)
    with open_gdb(db) as gdb:
        release = get_release(gdb, agent, version)
        result = check(gdb, release, spec, runbooks_path())
        try:
            record_pass(gdb, who, result)
        except (sqlite3.OperationalError, ReadOnly, KeyProblem) as exc:
            # a read-only DB (or one whose audit key is elsewhere) still answers the gate
            say(f"warning: could not record the gate pass: {exc}")
    return result


@release_app.command("show")
def release_show(
    agent: str,
    version: str,
    rubric_name: RubricOpt = "deployment",
    db: DbOpt = None,
    json_: JsonOpt = False,
) -> None:
    """A release: answers, sign-off state per role, policy facts."""
    with gov_errors():
        from ..governance.gate import check
        from ..governance.releases import get_release, signoffs

        spec = rubric(rubric_name)
        with open_gdb(db) as gdb:
            release = get_release(gdb, agent, version)
            result = check(gdb, release, spec, runbooks_path())
            history = signoffs(gdb, release.id)
        if json_:
            emit_json(
                {
                    **release.as_dict(full=True),
                    "gate": result.as_dict(),
                    "signoffs": [s.as_dict() for s in history],
                    "policy_facts": result.facts.as_dict() if result.facts else None,
                }
            )
            return
        out(
            f"{release.agent} {release.version}  status {release.status}  "
            f"revision {release.revision}"
        )
        out(f"author {release.author}  content hash {release.content_hash}")
        for q in spec.questions:
            out(f"[{q.id}] {q.text}")
            for key, value in release.answer(q.id).items():
                out(f"  {key} = {_flat(value)}")
        out("roles")
        for s in result.roles:
            who = s.signoff.person if s.signoff else (s.owner or "-")
            out(f"  {s.role:<11} {s.status:<9} {who}")
        _show_evaluation(result)
        out("gate: ready" if result.ready else "gate: not ready")
        for reason in result.reasons:
            out(f"  - {reason}")
        for note in result.notes:
            out(f"  note: {note}")


def _show_evaluation(result: "GateResult") -> None:
    """The behavioural evidence beside the answers: each threshold, what was measured."""
    evidence = result.evidence
    if evidence is None and not result.thresholds:
        return
    if evidence is None:
        out("evaluation: none yet")
    else:
        fresh = "current" if evidence.content_hash == result.release.content_hash else "STALE"
        out(
            f"evaluation: suite {evidence.suite_name} ({evidence.passed}/{evidence.cases} cases"
            f" passed, {evidence.finished_at[:19]}, target {evidence.target}, {fresh})"
        )
    for row in result.thresholds:
        out(
            f"  {row['metric']:<36} {row['threshold']:<11} "
            f"{row.get('value', '-'):<9} {row.get('status', '')}"
        )


@release_app.command("check")
def release_check(
    agent: str,
    version: str,
    rubric_name: RubricOpt = "deployment",
    db: DbOpt = None,
    as_: AsOpt = None,
    json_: JsonOpt = False,
) -> None:
    """The CI gate: exit 0 when ready, 1 with every reason when not."""
    with gov_errors():
        result = _check(db, agent, version, rubric_name, actor(as_))
        if json_:
            emit_json(result.as_dict())
        elif result.ready:
            out(f"{agent} {version}: ready")
        else:
            out(f"{agent} {version}: not ready")
            for reason in result.reasons:
                out(f"  - {reason}")
        if not json_:
            for note in result.notes:
                say(f"note: {note}")
    if not result.ready:
        raise typer.Exit(int(ExitCode.NOT_READY))


@release_app.command("promote")
def release_promote(
    agent: str,
    version: str,
    rubric_name: RubricOpt = "deployment",
    db: DbOpt = None,
    as_: AsOpt = None,
) -> None:
    """Mark a release live; only when the gate passes."""
    with gov_errors():
        from ..governance.lifecycle import promote

        with open_gdb(db) as gdb:
            promote(
                gdb,
                actor=actor(as_),
                agent=agent,
                version=version,
                rubric=rubric(rubric_name),
                runbooks=runbooks_path(),
            )
        say(f"{agent} {version} is live")


@release_app.command("retire")
def release_retire(
    agent: str,
    version: str,
    reason: Annotated[str, typer.Option(help="Why (recorded in the audit log).")] = "",
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False,
    db: DbOpt = None,
    as_: AsOpt = None,
) -> None:
    """Retire a live release (decommissioning the agent) or withdraw a proposed one."""
    with gov_errors():
        from ..governance.lifecycle import retire

        if not reason.strip():
            fail("retiring a release needs a --reason")
        with open_gdb(db) as gdb:
            confirm_or_yes(f"retire {agent} {version}? The agent then has no live release", yes)
            before = retire(gdb, actor=actor(as_), agent=agent, version=version, reason=reason)
        say(f"{agent} {version} retired (was {before})")


def _flat(value: Any) -> str:
    """One line of text for a value (answers are written by people, over many lines)."""
    if isinstance(value, list):
        return "[" + ", ".join(_flat(v) for v in value) + "]"
    from ..protocol.text import one_line

    return one_line(value, None)


def _show_review(items: list[Any], role: str, reasons: tuple[str, ...] = ()) -> None:
    """Each question: the author's answer (wrapped, left) beside the policy facts (right)."""
    import textwrap
    from itertools import zip_longest

    width = 56
    out(f"\n=== review as {role} ===")
    for item in items:
        out(f"\n[{item.question.id}] {item.question.text}")
        left: list[str] = []
        for key, value in item.answer.items():
            left += textwrap.wrap(f"{key} = {_flat(value)}", width, subsequent_indent="    ")
        out(f"  {'ANSWER (author)'.ljust(width)}  | POLICY FACTS")
        for a, f in zip_longest(left, item.facts, fillvalue=""):
            out(f"  {a.ljust(width)}  | {f}")
        for reason in reasons:
            if reason.startswith(f"{item.question.id}:"):
                out(f"  ! {reason}")


def signoff(
    agent: str,
    version: str,
    role: Annotated[
        list[str] | None, typer.Option(help="Role to sign (default: every role you own here).")
    ] = None,
    approve: Annotated[bool, typer.Option("--approve", help="Approve without the review.")] = False,
    reject: Annotated[bool, typer.Option("--reject", help="Reject without the review.")] = False,
    comment: Annotated[str, typer.Option(help="Why (required to reject).")] = "",
    rubric_name: RubricOpt = "deployment",
    db: DbOpt = None,
    as_: AsOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Review a release question by question against its policy, then approve or reject."""
    with gov_errors():
        from ..governance.releases import get_release, sign, signing_roles

        if approve and reject:
            fail("choose one of --approve and --reject", ExitCode.USAGE)
        person = actor(as_)
        spec = rubric(rubric_name)
        with open_gdb(db) as gdb:
            release = get_release(gdb, agent, version)
            reviewed = release.content_hash
            # refuse an author or a non-owner now, not after a long review
            roles = signing_roles(gdb, release, person, role, spec)
            if not approve and not reject:
                if not is_interactive():
                    fail("not on a terminal: pass --approve or --reject --comment TEXT")
                decision, comment = _interactive(gdb, release, spec, roles, comment)
            else:
                decision = "approve" if approve else "reject"
            made = sign(
                gdb,
                person=person,
                agent=agent,
                version=version,
                decision="approve" if decision == "approve" else "reject",
                comment=comment,
                rubric=spec,
                roles=role,
                reviewed_hash=reviewed,
            )
        if json_:
            emit_json([s.as_dict() for s in made])
        for s in made:
            say(
                f"{s.person} {s.decision.rstrip('e')}ed {agent} {version} as {s.role} "
                f"(valid until {s.expires_at[:10]})"
            )


def _interactive(
    gdb: Any, release: Any, spec: Any, roles: list[str], comment: str
) -> tuple[str, str]:
    from ..governance.errors import GovernanceError
    from ..governance.gate import check
    from ..governance.review import review_items

    try:
        facts = release.policy_facts()
    except GovernanceError:
        facts = None
    gate = check(gdb, release, spec, runbooks_path())
    reasons = gate.reasons
    out(
        f"{release.agent} {release.version} by {release.author}  (hash {release.content_hash[:12]})"
    )
    for r in roles:
        _show_review(review_items(release, spec, facts, r), r, reasons)
    _show_evaluation(gate)  # the behavioural evidence, beside the answers
    for reason in reasons:
        if reason.startswith("evaluation:"):
            out(f"  ! {reason}")
    # end of input at a prompt is the CLI root's one line (exit 1): nothing is signed
    choice = ""
    while choice not in ("approve", "reject"):
        choice = str(typer.prompt("\napprove or reject?")).strip().lower()
    text = str(typer.prompt("comment", default=comment or "", show_default=False))
    while choice == "reject" and not text.strip():
        text = str(typer.prompt("a rejection needs a comment saying why"))
    return choice, text


def register(app: typer.Typer) -> None:
    app.add_typer(rubric_app, name="rubric")
    app.add_typer(release_app, name="release")
    app.command("signoff")(signoff)
