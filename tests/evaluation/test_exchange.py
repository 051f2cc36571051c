"""Evaluation results in `agentops export` / `agentops import`: the real CLI on real SQLite
files, the gate's verdict the same on both sides, a second import a no-op, bad files one
line naming the file with nothing written."""

from __future__ import annotations

import re
import shutil
import sqlite3
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentops_console.governance.paths import PROJECT_ROOT

from .conftest import POLICY, TARGETS, live, make_project, ok, propose, run, sign_all

RECORDED = PROJECT_ROOT / "fixtures" / "evals" / "recorded" / "it-support-1.4.0.jsonl"
COLUMNS = (
    "agent, version, content_hash, kind, suite_name, suite_path, suite_sha256, target, cases,"
    " passed, metrics, started_at, finished_at, recorded_at, recorded_by"
)


def _rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def _evaluations(db: Path) -> list[tuple[Any, ...]]:
    return _rows(db, f"SELECT {COLUMNS} FROM evaluations ORDER BY agent, version, id")


def _audit_count(db: Path) -> int:
    count: int = _rows(db, "SELECT COUNT(*) FROM audit")[0][0]
    return count


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A source DB with a fresh suite result and a replay for 1.5.1 (gate passes) and a
    result for 1.5.0 that went stale when 1.5.0 was revised; exported to out/. Built once
    for the module: two 500-case runs and a replay are the slow part."""
    root = tmp_path_factory.mktemp("source")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AGENTOPS_AUDIT_KEY_FILE", str(root / "audit.key"))
        project = make_project(root, mp)
        live("1.3.2")
        live("1.4.0")
        propose("1.5.0")
        suite = project / "fixtures" / "evals" / "it-support.toml"
        ok("eval", "run", suite, "--target", f"{TARGETS}:it_support_1_5_0",
           "--release", "it-support", "1.5.0", "--json")  # fmt: skip
        changed = root / "changed.cedar"
        changed.write_text(POLICY.read_text() + "\n// reviewed again\n")
        propose("1.5.0", policy=changed)  # a new revision: the 1.5.0 result is stale now
        propose("1.5.1")
        sign_all("1.5.1")
        ok("eval", "run", suite, "--target", f"{TARGETS}:it_support_1_5_1",
           "--release", "it-support", "1.5.1", "--json")  # fmt: skip
        ok("eval", "replay", RECORDED, "--target", f"{TARGETS}:it_support_1_5_1",
           "--release", "it-support", "1.5.1", "--json")  # fmt: skip
        ok("export", root / "out")
        yield root


@pytest.fixture
def exported(source: Path, tmp_path: Path) -> Path:
    """A copy of the export this test may edit."""
    shutil.copytree(source / "out", tmp_path / "out")
    return tmp_path / "out"


def _new_db(tmp_path: Path) -> Path:
    db = tmp_path / "other" / "gov.db"
    db.parent.mkdir()
    ok("init", "--db", db)
    return db


def test_evaluations_round_trip_and_a_stale_one_stays_stale(
    source: Path, exported: Path, tmp_path: Path
) -> None:
    db_source = source / "gov.db"
    document = tomllib.loads((exported / "evaluations" / "it-support" / "1.5.1.toml").read_text())
    sql = "SELECT content_hash FROM releases WHERE version = '1.5.1'"
    release_hash = _rows(db_source, sql)[0][0]
    assert document["release_content_hash"] == release_hash
    assert [e["kind"] for e in document["evaluations"]] == ["suite", "replay"]
    assert all(len(e["suite_sha256"]) == 64 for e in document["evaluations"])
    assert not (exported / "evaluations" / "it-support" / "1.4.0.toml").exists()

    db = _new_db(tmp_path)
    first = ok("import", exported, "--db", db)
    assert "evaluation it-support@1.5.1 suite it-support of" in first.stdout
    assert "evaluation it-support@1.5.0 suite it-support of" in first.stdout
    assert first.stdout.count("(stale: for other content)") == 1
    assert _evaluations(db) == _evaluations(db_source)

    for where in (db_source, db):  # the gate says the same on both sides
        assert ok("release", "check", "it-support", "1.5.1", "--db", where).stdout.endswith(
            "ready\n"
        )
        stale = run("release", "check", "it-support", "1.5.0", "--db", where)
        assert stale.exit_code == 1
        assert "is stale: the release changed since (content hash" in stale.stdout

    audit = _audit_count(db)
    again = ok("import", exported, "--db", db)
    assert again.stdout == "" and "nothing to import: up to date" in again.stderr
    assert _evaluations(db) == _evaluations(db_source) and _audit_count(db) == audit


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize(
    ("edit", "code", "message"),
    [
        (('kind = "suite"', 'kind = "vibes"'), 2, "evaluation kind 'vibes' is not one of"),
        (('suite_sha256 = "', 'suite_sha256 = "zz'), 2, "`suite_sha256` must be a sha256"),
        (("cases = 500", 'cases = "500"'), 2, "`cases` must be a whole number from 0"),
        (("passed = 500", "passed = 501"), 2, "more cases passed than cases"),
        (("metrics = ", 'metrics = "[1]"\nxmetrics = '), 2, "unknown evaluation field"),
        (('recorded_by = "', 'recorded_by = "\\u0007'), 2, "invalid person"),
        (('release_content_hash = "', 'release_content_hash = "0'), 2, "must be a sha256"),
        (('version = "1.5.1"', 'version = "9.9"'), 3, "no release it-support@9.9 in the DB"),
    ],
)
def test_a_bad_evaluations_file_is_one_line_naming_it_and_writes_nothing(
    exported: Path, tmp_path: Path, edit: tuple[str, str], code: int, message: str
) -> None:
    db = _new_db(tmp_path)
    bad = exported / "evaluations" / "it-support" / "1.5.1.toml"
    _edit(bad, *edit)
    audit = _audit_count(db)
    result = run("import", exported, "--db", db)
    assert result.exit_code == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0] and message in lines[0], result.stderr
    assert _evaluations(db) == [] and _audit_count(db) == audit
    assert _rows(db, "SELECT COUNT(*) FROM releases") == [(0,)]


def test_evaluations_for_other_content_of_the_release_are_refused(
    exported: Path, tmp_path: Path
) -> None:
    """A release file and its evaluations file must describe the same content: results
    exported for another revision would otherwise look fresh after the import."""
    db = _new_db(tmp_path)
    path = exported / "evaluations" / "it-support" / "1.5.1.toml"
    other = exported / "evaluations" / "it-support" / "1.5.0.toml"
    release_hash = tomllib.loads(other.read_text())["release_content_hash"]
    text = path.read_text()
    current = tomllib.loads(text)["release_content_hash"]
    path.write_text(text.replace(f'release_content_hash = "{current}"',
                                 f'release_content_hash = "{release_hash}"'))  # fmt: skip
    result = run("import", exported, "--db", db)
    assert result.exit_code == 4 and f"{path}: exported for it-support@1.5.1" in result.stderr
    assert _evaluations(db) == []


def test_the_evaluations_table_has_one_writer() -> None:
    statement = re.compile(r"INSERT\s+(?:OR\s+\w+\s+)?INTO\s+evaluations\b", re.I)
    sources = (PROJECT_ROOT / "src" / "agentops_console").rglob("*.py")
    assert [str(p) for p in sources if statement.search(p.read_text("utf-8"))] == []
