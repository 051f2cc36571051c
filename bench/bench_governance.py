"""Governance CLI speed: `agentops --help`, `release check` and `signoff --approve` on a
big DB, and `audit verify` over a million rows. Every figure is a real subprocess.

Run: `.venv/bin/python bench/bench_governance.py` (or `make bench`); `--help-only` for
the first row alone. Prints one table (bench/table.py). `agentops --help` is timed against
`python -c "import typer"` in alternating runs of the same rounds: a loaded box moves both
alike, so the ratio holds where the milliseconds do not. The big DBs are built with bulk
inserts that compute the real hash chain, so `audit verify` passes on them.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench.table` as a script

from agentops_console.governance import audit, auditkey
from agentops_console.governance.audit import canonical, row_content, row_hash
from agentops_console.governance.db import GovernanceDB, open_db
from agentops_console.governance.gate import check, record_pass
from agentops_console.governance.owners import set_owner
from agentops_console.governance.registry import add_agent
from agentops_console.governance.releases import content_hash, get_release, propose, sign
from agentops_console.governance.rubric import find_rubric
from agentops_console.governance.tomlfile import load_toml
from bench.table import Figure, median_of_rounds, print_table, spread

ROOT = Path(__file__).resolve().parents[1]
AGENTOPS = str(Path(sys.executable).parent / "agentops")
POLICY = (ROOT / "fixtures" / "policies" / "it-support.cedar").read_text()
RUBRIC = find_rubric(ROOT / "rubrics")
OWNERS = {"product": "pat", "security": "sam", "platform": "pia", "applied-ai": "ali"}
OWNERS["operations"] = "ola"
BATCH = 50_000


def bulk_audit(gdb: GovernanceDB, rows: int) -> None:
    """Append `rows` audit rows in one transaction, chaining hashes as audit.append does
    (keyed with the audit key from `keyed_from` on, and the head signed), so that `audit
    verify` passes on the result."""
    conn = gdb.conn
    conn.execute("BEGIN IMMEDIATE")
    state = audit.read_head(conn)
    seq, prev = state.seq, state.hash
    keyed_from = state.keyed_from
    key, _ = auditkey.load_or_create(auditkey.default_key_path())
    details = canonical({"role": "security", "comment": "bulk", "n": 0})
    written = 0
    while written < rows:
        batch = []
        for _ in range(min(BATCH, rows - written)):
            seq += 1
            at = f"2025-01-01T00:00:00.{seq % 1_000_000:06d}+00:00"
            target = f"bulk@{seq}"
            content = row_content(seq, at, "bench", "bench.row", "bulk", target, details)
            if keyed_from is not None and seq >= keyed_from:
                digest = auditkey.mac(key, prev + content)
            else:
                digest = row_hash(prev, content)
            batch.append((seq, at, "bench", "bench.row", "bulk", target, details, prev, digest))
            prev = digest
        conn.executemany(
            "INSERT INTO audit (seq, at, actor, action, agent, target, details, prev_hash, hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            batch,
        )
        written += len(batch)
    meta = [("audit_head_seq", str(seq)), ("audit_head_hash", prev)]
    if keyed_from is not None and seq >= keyed_from:
        head_mac = auditkey.mac(key, audit.head_text(seq, prev, keyed_from))
        meta += [("audit_head_mac", head_mac), ("audit_key_id", auditkey.key_id(key))]
    conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", meta)
    conn.execute("COMMIT")


def build_release_db(path: Path, audit_rows: int, releases: int) -> None:
    """it-support with five owners, 1.3.2 live-worthy, 1.4.0 signed by all but operations,
    `releases` more releases on other agents, and `audit_rows` audit rows in all."""
    gdb = open_db(path, create=True)
    add_agent(gdb, actor="admin", name="it-support", endpoint="http://127.0.0.1:9", token_env="T")
    for role, person in OWNERS.items():
        set_owner(gdb, actor="admin", agent="it-support", role=role, person=person)
    answers = load_toml(ROOT / "fixtures" / "releases" / "it-support-1.3.2.toml")
    answers.pop("version")
    for version, rollback_to in (("1.3.2", "disable"), ("1.4.0", "1.3.2")):
        answers["q4"]["rollback_to"] = rollback_to
        propose(
            gdb,
            actor="dev",
            agent="it-support",
            version=version,
            answers=answers,
            policy=POLICY,
            author="dev",
            rubric=RUBRIC,
        )
        for person in OWNERS.values():
            if version == "1.4.0" and person == "ola":
                continue
            sign(
                gdb,
                person=person,
                agent="it-support",
                version=version,
                decision="approve",
                comment="ok",
                rubric=RUBRIC,
            )
        if version == "1.3.2":
            record_pass(
                gdb,
                "ci",
                check(gdb, get_release(gdb, "it-support", "1.3.2"), RUBRIC, ROOT / "runbooks"),
            )
    answers_text = canonical(answers)
    policy_sha = hashlib.sha256(POLICY.encode()).hexdigest()
    gdb.conn.execute("BEGIN IMMEDIATE")
    gdb.conn.executemany(
        "INSERT INTO releases (agent, version, revision, author, rubric, answers, policy,"
        " policy_sha256, content_hash, status, created_at, updated_at)"
        " VALUES (?, ?, 1, 'dev', 'deployment', ?, ?, ?, ?, 'proposed', ?, ?)",
        [
            (
                f"agent-{i % 100}",
                f"0.{i}.0",
                answers_text,
                POLICY,
                policy_sha,
                content_hash(f"agent-{i % 100}", f"0.{i}.0", answers, POLICY),
                "2025-01-01T00:00:00+00:00",
                "2025-01-01T00:00:00+00:00",
            )
            for i in range(releases - 2)
        ],
    )
    gdb.conn.execute("COMMIT")
    have = audit.head(gdb.conn)[0]
    bulk_audit(gdb, audit_rows - have)
    gdb.close()


def wall_ms(
    args: list[str], env: dict[str, str], runs: int = 5, baseline: list[str] | None = None
) -> tuple[float, int, float | None]:
    """Median wall ms of `args` (and of `baseline`, run alternately with it), last exit code."""
    samples: list[float] = []
    base: list[float] = []
    code = 0
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(args, env=env, capture_output=True, check=False)
        samples.append((time.perf_counter() - started) * 1000)
        code = done.returncode
        if baseline is not None:
            started = time.perf_counter()
            subprocess.run(baseline, env=env, capture_output=True, check=True)
            base.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), code, statistics.median(base) if base else None


#: The raw library calls `audit verify` makes, with no checks: read every row in seq order
#: and HMAC-SHA256 each one's text chained to the previous digest.
_RAW_VERIFY = """
import hmac, sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
key = open(sys.argv[2], "rb").read()
cursor = conn.execute(
    "SELECT seq, at, actor, action, agent, target, details, prev_hash, hash FROM audit ORDER BY seq"
)
cursor.arraysize = 4096
prev = b""
while batch := cursor.fetchmany():
    for row in batch:
        prev = hmac.digest(key, prev + "|".join(map(str, row)).encode(), "sha256")
"""


def help_row(env: dict[str, str], rounds: int, pairs: int) -> Figure:
    """`agentops --help` beside `import typer`, alternating, `pairs` of each per round: the
    ratio is the median of the per-round ratios of medians."""
    ours: list[list[float]] = []
    typer: list[list[float]] = []
    for _ in range(rounds):
        ours.append([])
        typer.append([])
        for _ in range(pairs):
            for cmd, out in (
                ([AGENTOPS, "--help"], ours[-1]),
                ([sys.executable, "-c", "import typer"], typer[-1]),
            ):
                started = time.perf_counter()
                subprocess.run(cmd, env=env, capture_output=True, check=True)
                out.append((time.perf_counter() - started) * 1000)
    ratios = [statistics.median(a) / statistics.median(b) for a, b in zip(ours, typer, strict=True)]
    print(
        f"agentops --help: {rounds} rounds of {pairs} alternating pairs; per-round ratio "
        f"{spread(ratios, 2)}; ms per round median"
        f" {spread([statistics.median(r) for r in ours], 2)}, import typer"
        f" {spread([statistics.median(r) for r in typer], 2)}",
        flush=True,
    )
    return Figure(
        f"agentops --help ({rounds}×{pairs} runs)",
        median_of_rounds(ours),
        unit="ms",
        baseline=median_of_rounds(typer),
        baseline_name="python -c 'import typer'",
        max_ratio=1.3,
        ratio_override=statistics.median(ratios),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="rounds of the --help timing")
    parser.add_argument("--pairs", type=int, default=5, help="alternating runs per round")
    parser.add_argument("--help-only", action="store_true", help="time `agentops --help` only")
    args = parser.parse_args()
    figures: list[Figure] = []
    failed: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        # a throw-away audit key, for the DBs built here and the commands run on them
        os.environ[auditkey.ENV] = str(Path(tmp) / "audit.key")
        env = {**os.environ, "AGENTOPS_RUNBOOKS": str(ROOT / "runbooks"), "NO_COLOR": "1"}
        env["AGENTOPS_RUBRICS"] = str(ROOT / "rubrics")
        figures.append(help_row(env, args.rounds, args.pairs))
        if not args.help_only:
            figures += db_rows(Path(tmp), env, failed)
    ok = print_table("governance CLI (every figure a real subprocess)", figures)
    for line in failed:
        print(f"NOT OK: {line}")
    return 0 if ok and not failed else 1


def db_rows(tmp: Path, env: dict[str, str], failed: list[str]) -> list[Figure]:
    """The commands that read a big DB, each with an absolute limit (no baseline)."""
    figures: list[Figure] = []

    def timed(
        name: str,
        args: list[str],
        limit_ms: float,
        runs: int = 5,
        baseline: tuple[list[str], str] | None = None,
    ) -> None:
        value, code, base = wall_ms(args, env, runs, baseline[0] if baseline else None)
        figures.append(
            Figure(
                name,
                value,
                unit="ms",
                baseline=base,
                baseline_name=baseline[1] if baseline else "",
                max_value=limit_ms,
            )
        )
        if code != 0:
            failed.append(f"{name} exited {code}")

    # the CLI framework's own floor, run alternately with each command: the absolute
    # limits assume a box where it takes ~90 ms; the ratio is what to compare across runs
    typer = ([sys.executable, "-c", "import typer"], "python -c 'import typer'")
    big = tmp / "big.db"
    started = time.perf_counter()
    build_release_db(big, 100_000, 1_000)
    build_s = time.perf_counter() - started
    env["AGENTOPS_DB"] = str(big)
    sign_args = [AGENTOPS, "signoff", "it-support", "1.4.0", "--approve", "--as", "ola"]
    timed("signoff --approve, 100k audit rows, 1k releases", sign_args, 300, baseline=typer)
    check_args = [AGENTOPS, "release", "check", "it-support", "1.4.0"]
    timed("release check (after the sign-off), same DB", check_args, 300, baseline=typer)
    huge = tmp / "huge.db"
    started = time.perf_counter()
    gdb = open_db(huge, create=True)
    bulk_audit(gdb, 1_000_000)
    gdb.close()
    build_huge_s = time.perf_counter() - started
    env["AGENTOPS_DB"] = str(huge)
    raw = [sys.executable, "-c", _RAW_VERIFY, str(huge), os.environ[auditkey.ENV]]
    timed(
        "audit verify, 1,000,000 rows",
        [AGENTOPS, "audit", "verify"],
        10_000,
        runs=1,
        baseline=(raw, "raw: SELECT + HMAC-SHA256 per row"),
    )
    figures.append(Figure("(build: 100k/1k DB)", build_s, unit="s"))
    figures.append(Figure("(build: 1M-row DB)", build_huge_s, unit="s"))
    return figures


if __name__ == "__main__":
    raise SystemExit(main())
