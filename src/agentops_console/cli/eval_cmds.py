"""`agentops eval run`: a suite against a release candidate, its result stored for the gate.

Everything that can be wrong with the input is found before the first case runs (the
suite, the target, the release, the tools the suite names, the records DB), so a bad
invocation writes nothing. Heavy imports happen inside the command.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .common import ExitCode, command_group, emit_json, fail, say
from .gov_common import AsOpt, DbOpt, JsonOpt, actor, gov_errors, open_gdb, out, rubric, table

if TYPE_CHECKING:
    from ..evaluation.harness import EvalRun
    from ..governance.gate import GateResult

eval_app = command_group("Evaluate a release candidate's behaviour against a suite.")

RecordsOpt = Annotated[
    Path | None,
    typer.Option(
        "--records",
        envvar="AGENTOPS_RECORDS",
        help="Records DB for the evaluated sessions (default: records.db beside the"
        " governance DB).",
        show_default=False,
    ),
]

OTelOpt = Annotated[
    bool,
    typer.Option(
        "--otel-export",
        envvar="AGENTOPS_EVAL_OTEL_EXPORT",
        help="Send the evaluated sessions as GenAI spans and each result as a"
        " gen_ai.evaluation.result event (OTLP/HTTP, OTEL_EXPORTER_OTLP_* variables).",
    ),
]


@contextmanager
def _otel(enabled: bool) -> Iterator[Any]:
    """The TracerProvider for --otel-export (None without it), flushed at the end."""
    if not enabled:
        yield None
        return
    from ..evaluation.otel_events import export_provider

    provider, owned = export_provider()
    try:
        yield provider
    finally:
        if owned:
            provider.shutdown()


@eval_app.command("run")
def eval_run(
    suite: Annotated[Path, typer.Argument(help="Suite file (fixtures/evals/*.toml or .jsonl).")],
    target: Annotated[
        str, typer.Option("--target", help="The agent entry point, package.module:function.")
    ],
    release: Annotated[
        tuple[str, str],
        typer.Option("--release", help="AGENT VERSION: the release under test (governance DB)."),
    ],
    jobs: Annotated[int, typer.Option("--jobs", min=1, max=64, help="Cases run at once.")] = 4,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.01, help="Seconds per case before it fails.")
    ] = 30.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed passed to the target.")] = 7,
    rubric_name: Annotated[str, typer.Option("--rubric", help="Rubric for the verdict.")] = (
        "deployment"
    ),
    records: RecordsOpt = None,
    otel_export: OTelOpt = False,
    db: DbOpt = None,
    as_: AsOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Run every case on the real runtime configured as the release, store the result."""
    from ..evaluation.suite import SuiteError
    from ..records.errors import RecordsProblem

    with gov_errors():
        try:
            _eval_run(
                suite,
                target,
                release,
                jobs,
                timeout,
                seed,
                rubric_name,
                records,
                db,
                as_,
                json_,
                otel_export,
            )
        except (SuiteError, ValueError) as exc:
            fail(str(exc), ExitCode.USAGE)
        except RecordsProblem as exc:
            fail(str(exc), ExitCode.DATABASE)


def _eval_run(
    suite_path: Path,
    target_ref: str,
    release: tuple[str, str],
    jobs: int,
    timeout: float,
    seed: int,
    rubric_name: str,
    records: Path | None,
    db: Path | None,
    as_: str | None,
    json_: bool,
    otel_export: bool = False,
) -> None:
    from ..evaluation.harness import Harness, TargetError, load_target
    from ..evaluation.results import release_under_test, report, store_records, store_result
    from ..evaluation.suite import check_tools, load_suite
    from ..governance.gate import check
    from ..records.paths import default_records_path
    from .gov_common import runbooks_path

    agent, version = release
    who = actor(as_)
    spec = rubric(rubric_name)
    suite = load_suite(suite_path)
    try:
        target = load_target(target_ref)
    except TargetError as exc:
        fail(str(exc), ExitCode.USAGE)
    records_path = records or (db.with_name("records.db") if db else default_records_path())
    with open_gdb(db) as gdb:
        under_test = release_under_test(gdb, agent, version)
        if suite.header.agent is not None and suite.header.agent != agent:
            fail(f"{suite_path}: the suite is for agent {suite.header.agent!r}, not {agent!r}")
        check_tools(suite, set(under_test.catalog))
        # the records DB is opened (and its writer lock taken) only after the run; check
        # now that it can be, so a run never ends in a refusal to store it
        _probe_records(records_path)
        with _otel(otel_export) as provider:
            harness = Harness(
                suite,
                target,
                under_test,
                target_ref=target_ref,
                jobs=jobs,
                timeout_s=timeout,
                seed=seed,
                tracer_provider=provider,
            )
            run = _with_progress(harness, json_)
        written = store_records(records_path, run)
        evaluation_id = store_result(gdb, run, actor=who)
        result = check(gdb, _release(gdb, agent, version), spec, runbooks_path())
    if json_:
        emit_json({**report(run, evaluation_id), "gate": result.as_dict()})
    else:
        _summary(run, result)
    sessions = written.inserted + written.replaced + written.merged
    say(
        f"{agent} {version}: {run.summary['passed']}/{run.summary['cases']} cases passed in "
        f"{run.duration_s:.1f} s; result {evaluation_id} stored; {sessions} sessions "
        f"recorded in {records_path}"
    )


def _release(gdb: Any, agent: str, version: str) -> Any:
    from ..governance.releases import get_release

    return get_release(gdb, agent, version)


def _probe_records(path: Path) -> None:
    from ..records.store import open_store

    with open_store(path, writer=True, create=True):
        pass


def _with_progress(harness: Any, quiet: bool) -> "EvalRun":
    """A progress bar on a terminal (stderr); nothing otherwise."""
    import sys

    if quiet or not sys.stderr.isatty():
        return harness.run()  # type: ignore[no-any-return]
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    total = len(harness.suite.cases)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as progress:
        task = progress.add_task(f"eval {harness.suite.name}", total=total)
        failed = 0

        def advance(result: Any) -> None:
            nonlocal failed
            failed += not result.passed
            progress.update(
                task, advance=1, description=f"eval {harness.suite.name} ({failed} failed)"
            )

        harness.on_case = advance
        return harness.run()  # type: ignore[no-any-return]


def _pct(metric: dict[str, Any]) -> str:
    value = metric.get("value")
    if value is None:
        return "-"
    low, high = metric.get("low") or 0.0, metric.get("high")
    if metric.get("unit") == "rate":
        return f"{value * 100:.1f} % ({low * 100:.1f}-{(high or 0.0) * 100:.1f})"
    if metric.get("unit") == "usd":
        hi = "-" if high is None else f"{high:.5f}"
        return f"${value:.5f} ({low:.5f}-{hi})"
    return f"{value:.2f} ({low:.2f}-{high or 0.0:.2f})"


def _summary(run: "EvalRun", result: "GateResult") -> None:
    summary = run.summary
    rows = []
    for category, metrics in summary["categories"].items():
        success = metrics["task_success_rate"]
        rows.append(
            [
                category,
                success["n"],
                success["k"],
                _pct(success),
                _pct(metrics["escalation_rate"]),
                _pct(metrics["cost_per_successful_task_usd"]),
            ]
        )
    out(table(rows, ["CATEGORY", "CASES", "PASSED", "SUCCESS (95% CI)", "ESCALATED", "$/SUCCESS"]))
    out("")
    out(table([[k, _pct(m)] for k, m in summary["suite"].items()], ["METRIC", "VALUE (95% CI)"]))
    if summary["taxonomy"]:
        out("")
        out(
            table([[k, n] for k, n in summary["taxonomy"].items()], ["FAILED EXPECTATION", "CASES"])
        )
    if result.thresholds:
        out("")
        rows = [
            [r["metric"], r["threshold"], r.get("value", "-"), r.get("status", "")]
            for r in result.thresholds
        ]
        out(table(rows, ["GATE METRIC", "THRESHOLD", "VALUE", "STATUS"]))
    evaluation = [r for r in result.reasons if r.startswith("evaluation:")]
    out(
        "evaluation: meets the rubric" if not evaluation else "evaluation: does not meet the rubric"
    )
    for reason in evaluation:
        out(f"  - {reason}")


# -- replay --------------------------------------------------------------------------------
SinceOpt = Annotated[
    str | None,
    typer.Option("--since", help="Sessions started at or after: ISO 8601, or 24h / 7d ago."),
]
UntilOpt = Annotated[
    str | None, typer.Option("--until", help="Sessions started before: ISO 8601, or an age.")
]


@eval_app.command("replay")
def eval_replay(
    target: Annotated[
        str, typer.Option("--target", help="The agent entry point, package.module:function.")
    ],
    release: Annotated[
        tuple[str, str],
        typer.Option("--release", help="AGENT VERSION: the candidate (governance DB)."),
    ],
    source: Annotated[
        Path | None,
        typer.Argument(
            help="Recorded sessions: a JSONL export or a records DB (default: --records).",
            show_default=False,
        ),
    ] = None,
    agent: Annotated[
        str | None, typer.Option("--agent", help="Recorded agent (default: the release's).")
    ] = None,
    version: Annotated[
        str | None, typer.Option("--version", help="Only sessions of this recorded version.")
    ] = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    jobs: Annotated[int, typer.Option("--jobs", min=1, max=64, help="Sessions run at once.")] = 4,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.01, help="Seconds per session before it fails.")
    ] = 30.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed passed to the target.")] = 7,
    rubric_name: Annotated[str, typer.Option("--rubric", help="Rubric for the verdict.")] = (
        "deployment"
    ),
    show: Annotated[int, typer.Option("--show", min=0, help="Regressed sessions listed.")] = 10,
    records: RecordsOpt = None,
    otel_export: OTelOpt = False,
    db: DbOpt = None,
    as_: AsOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Feed recorded sessions through the candidate (no live tool called), store the diff."""
    from ..evaluation.harness import TargetError, load_target
    from ..evaluation.replay import ReplayError, run_replay, select
    from ..evaluation.results import release_under_test, store_replay
    from ..evaluation.sources import recorded
    from ..governance.gate import check
    from ..records.paths import default_records_path
    from .gov_common import runbooks_path
    from .sessions_cmds import _when, records_errors

    name, ver = release
    with records_errors():
        spec = rubric(rubric_name)
        try:
            loaded = load_target(target)
        except TargetError as exc:
            fail(str(exc), ExitCode.USAGE)
        start, end = _when(since, "--since"), _when(until, "--until")
        path = source or records or default_records_path()
        with open_gdb(db) as gdb:
            under_test = release_under_test(gdb, name, ver)  # unknown agent or version: exit 3
            who = agent or name
            found = recorded(path, agent=who, version=version, since=start, until=end)
            replay_set = select(found, str(path), agent=who, version=version)
            if not replay_set.records:
                fail(
                    f"{path}: no ended session of {who}"
                    + (f" {version}" if version else "")
                    + " with a recorded input to replay"
                    + (f" ({len(replay_set.skipped)} skipped)" if replay_set.skipped else "")
                )
            multiple = spec.evaluation.replay_cost_multiple if spec.evaluation else 2.0
            try:
                with _otel(otel_export) as provider:
                    replay = run_replay(
                        replay_set,
                        loaded,
                        under_test,
                        target_ref=target,
                        jobs=jobs,
                        timeout_s=timeout,
                        seed=seed,
                        cost_multiple=multiple,
                        tracer_provider=provider,
                    )
            except (ReplayError, ValueError) as exc:
                fail(str(exc))
            evaluation_id = store_replay(gdb, replay, actor=actor(as_))
            result = check(gdb, _release(gdb, name, ver), spec, runbooks_path())
    summary = replay.summary
    if json_:
        emit_json(
            {
                "agent": name,
                "version": ver,
                "records": str(path),
                "set_sha256": replay_set.sha256,
                "target": target,
                "cost_multiple": multiple,
                "evaluation_id": evaluation_id,
                "duration_s": round(replay.run.duration_s, 3),
                **summary,
                "skipped_sessions": [list(s) for s in replay_set.skipped],
                "sessions": [d.as_dict() for d in replay.diffs],
                "gate": result.as_dict(),
            }
        )
    else:
        _replay_summary(replay, result, show)
    per_1000 = summary["suite"]["material_regressions_per_1000"]["value"]
    say(
        f"{name} {ver}: replayed {summary['cases']} sessions of {path} in "
        f"{replay.run.duration_s:.1f} s; {summary['material']} material regressions "
        f"({per_1000:g} per 1,000), {summary['drifted']} drifted; result {evaluation_id} stored"
    )


def _replay_summary(replay: Any, result: "GateResult", show: int) -> None:
    summary = replay.summary
    per_1000 = summary["suite"]["material_regressions_per_1000"]
    rows = [
        ["sessions replayed", summary["cases"]],
        ["skipped (running, or no recorded input)", summary["skipped"]],
        ["identical to the recording", summary["identical"]],
        ["drifted", summary["drifted"]],
        ["material regressions", summary["material"]],
        [
            "material regressions per 1,000 (95% CI)",
            f"{per_1000['value']:g} ({per_1000['low']:g}-{per_1000['high']:g})",
        ],
        ["cost recorded -> replayed", f"${summary['recorded_cost_usd']:.4f} -> "
         f"${summary['cost_usd']:.4f}"],
    ]  # fmt: skip
    out(table(rows, ["REPLAY", "VALUE"]))
    if summary["taxonomy"]:
        out("")
        out(table([[k, n] for k, n in summary["taxonomy"].items()], ["DIFFERENCE", "SESSIONS"]))
    regressed = [d for d in replay.diffs if d.material][:show]
    if regressed:
        out("")
        rows = [
            [
                d.session_id,
                f"{d.recorded_outcome} -> {d.outcome}",
                " ".join(d.recorded_tools) or "-",
                " ".join(d.tools) or "-",
                ", ".join(d.regressions),
            ]
            for d in regressed
        ]
        out(table(rows, ["SESSION", "OUTCOME", "RECORDED TOOLS", "REPLAYED TOOLS", "REGRESSION"]))
    _gate_lines(result)


def _gate_lines(result: "GateResult") -> None:
    evaluation = [r for r in result.reasons if r.startswith("evaluation:")]
    out(
        "evaluation: meets the rubric" if not evaluation else "evaluation: does not meet the rubric"
    )
    for reason in evaluation:
        out(f"  - {reason}")


# -- compare -------------------------------------------------------------------------------
@eval_app.command("compare")
def eval_compare(
    agent: Annotated[str, typer.Option("--agent", help="The agent both versions belong to.")],
    baseline: Annotated[str, typer.Option("--baseline", help="The version live today.")],
    candidate: Annotated[str, typer.Option("--candidate", help="The canary version.")],
    since: SinceOpt = None,
    until: UntilOpt = None,
    min_sessions: Annotated[
        int, typer.Option("--min-sessions", min=1, help="Fewest sessions per version to decide.")
    ] = 30,
    alpha: Annotated[
        float, typer.Option("--alpha", min=0.0001, max=0.5, help="Significance level.")
    ] = 0.05,
    store: Annotated[
        bool,
        typer.Option(
            "--release",
            help="Store the verdict as evidence for the candidate's release (governance DB).",
        ),
    ] = False,
    rubric_name: Annotated[str, typer.Option("--rubric", help="Rubric for the verdict.")] = (
        "deployment"
    ),
    records: Annotated[
        Path | None,
        typer.Option(
            "--records",
            envvar="AGENTOPS_RECORDS",
            help="Records DB (or a JSONL export) with both versions' live sessions.",
            show_default=False,
        ),
    ] = None,
    db: DbOpt = None,
    as_: AsOpt = None,
    json_: JsonOpt = False,
) -> None:
    """The canary verdict from live recorded sessions of both versions (exit 1 unless promote)."""
    from ..evaluation.canary import compare, live_only
    from ..evaluation.sources import recorded
    from ..records.paths import default_records_path
    from .sessions_cmds import _when, records_errors

    with records_errors():
        spec = rubric(rubric_name)
        start, end = _when(since, "--since"), _when(until, "--until")
        path = records or default_records_path()
        found = {
            v: live_only(recorded(path, agent=agent, version=v, since=start, until=end))
            for v in (baseline, candidate)
        }
        multiple = spec.evaluation.replay_cost_multiple if spec.evaluation else 2.0
        canary = compare(
            agent,
            baseline,
            candidate,
            found[baseline],
            found[candidate],
            min_sessions=min_sessions,
            alpha=alpha,
            cost_multiple=multiple,
        )
        evaluation_id = None
        if store:
            evaluation_id = _store_canary(canary, path, db, as_)
        summary = canary.summary
        if json_:
            emit_json(
                {"agent": agent, "records": str(path), "evaluation_id": evaluation_id, **summary}
            )
        elif canary.verdict != "insufficient":
            _compare_table(canary)
        line = f"{agent} {baseline} -> {candidate}: {canary.verdict}: {canary.why}"
        if canary.verdict != "promote":
            fail(line, ExitCode.NOT_READY)
        (say if json_ else out)(line)


def _store_canary(canary: Any, path: Path, db: Path | None, as_: str | None) -> int:
    import time

    from ..evaluation.results import release_under_test, store_evidence

    with open_gdb(db) as gdb:
        under_test = release_under_test(gdb, canary.agent, canary.candidate.version)
        now = time.time()
        return store_evidence(
            gdb,
            under_test,
            kind="canary",
            name=f"canary {canary.baseline.version}->{canary.candidate.version}",
            path=str(path),
            sha256=canary.sha256,
            target=f"live {canary.candidate.version}",
            summary=canary.summary,
            started_at=now,
            finished_at=now,
            actor=actor(as_),
            audit={"verdict": canary.verdict, "baseline": canary.baseline.version},
        )


def _compare_table(canary: Any) -> None:
    b, c = canary.baseline.as_dict(), canary.candidate.as_dict()

    def pct(m: dict[str, Any]) -> str:
        return "-" if m["value"] is None else f"{m['value'] * 100:.1f} %"

    def usd(v: float | None) -> str:
        return "-" if v is None else f"${v:.4f}"

    rows = [["sessions", b["sessions"], c["sessions"], ""]]
    for key in ("success_rate", "escalation_rate", "failure_rate", "bad_session_rate"):
        test = canary.tests[key]
        rows.append([key, pct(b[key]), pct(c[key]), f"p={test['p_value']:.3g} ({test['test']})"])
    for key in ("cost_per_successful_task_usd", "mean_loop_cost_usd"):
        rows.append([key, usd(b[key]), usd(c[key]), ""])
    per_1000 = canary.per_1000
    rows.append(["material regressions per 1,000", "", "-" if per_1000 is None else per_1000, ""])
    out(table(rows, ["METRIC", canary.baseline.version, canary.candidate.version, "TEST"]))
    kinds = sorted(set(b["taxonomy"]) | set(c["taxonomy"]))
    if kinds:
        out("")
        out(
            table(
                [[k, b["taxonomy"].get(k, 0), c["taxonomy"].get(k, 0)] for k in kinds],
                ["FAILURE / FLAG", canary.baseline.version, canary.candidate.version],
            )
        )


def register(app: typer.Typer) -> None:
    app.add_typer(eval_app, name="eval")
