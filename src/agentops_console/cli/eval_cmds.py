"""`agentops eval run`: a suite against a release candidate, its result stored for the gate.

Everything that can be wrong with the input is found before the first case runs (the
suite, the target, the release, the tools the suite names, the records DB), so a bad
invocation writes nothing. Heavy imports happen inside the command.
"""

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
                suite, target, release, jobs, timeout, seed, rubric_name, records, db, as_, json_
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
        harness = Harness(
            suite,
            target,
            under_test,
            target_ref=target_ref,
            jobs=jobs,
            timeout_s=timeout,
            seed=seed,
        )
        # the records DB is opened (and its writer lock taken) only after the run; check
        # now that it can be, so a run never ends in a refusal to store it
        _probe_records(records_path)
        run = _with_progress(harness, json_)
        written = store_records(records_path, run)
        evaluation_id = store_result(gdb, run, actor=who)
        result = check(gdb, _release(gdb, agent, version), spec, runbooks_path())
    if json_:
        emit_json({**report(run, evaluation_id), "gate": result.as_dict()})
    else:
        _summary(run, result)
    sessions = written.inserted + written.replaced
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


def register(app: typer.Typer) -> None:
    app.add_typer(eval_app, name="eval")
