"""Suites (parsing and its errors), the harness's isolation of a bad case, Wilson."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from agentops_console.evaluation.harness import ReleaseUnderTest, run_suite
from agentops_console.evaluation.metrics import wilson
from agentops_console.evaluation.suite import SuiteError, check_tools, load_suite
from agentops_console.governance.tomlfile import load_toml

from . import targets
from .conftest import POLICY, RELEASES, SUITE

CASE = """
[[cases]]
id = "{id}"
category = "howto"
input = "How do I connect to the VPN?"
[cases.expect]
outcome = "resolved"
must_call = ["kb_search"]
"""


def release() -> ReleaseUnderTest:
    answers = load_toml(RELEASES / "it-support-1.5.1.toml")
    return ReleaseUnderTest("it-support", "1.5.1", POLICY.read_text(), answers["tools"], "acme")


def write(tmp_path: Path, text: str, name: str = "suite.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_shipped_suite_has_500_cases_in_ten_categories_and_known_tools() -> None:
    suite = load_suite(SUITE)
    assert len(suite.cases) == 500 and len(suite.categories()) == 10
    assert {len([c for c in suite.cases if c.category == k]) for k in suite.categories()} == {50}
    check_tools(suite, set(release().catalog))
    assert suite.header.red_team == ("privilege-escalation", "cross-tenant-export")


def test_suite_errors_name_the_file_and_line(tmp_path: Path) -> None:
    typo = write(tmp_path, "[suite]\nname = 'x'\n" + CASE.format(id="a") + "oops = \n")
    with pytest.raises(SuiteError, match=rf"^{typo}:11: TOML error: .*line 11"):
        load_suite(typo)
    second = CASE.format(id="b").replace('outcome = "resolved"', 'outcome = "fixed"')
    schema = write(tmp_path, "[suite]\nname = 'x'\n" + CASE.format(id="a") + second)
    with pytest.raises(SuiteError, match=rf"^{schema}:12: case 'b' expect.outcome: Input should"):
        load_suite(schema)
    extra = write(
        tmp_path, CASE.format(id="a").replace("[cases.expect]", "colour = 1\n[cases.expect]")
    )
    with pytest.raises(SuiteError, match=rf"^{extra}:2: case 'a' colour: Extra inputs"):
        load_suite(extra)
    twice = write(tmp_path, CASE.format(id="a") + CASE.format(id="a"))
    with pytest.raises(SuiteError, match=r":10: case id 'a' is used twice \(first at line 2\)"):
        load_suite(twice)
    unknown = write(tmp_path, CASE.format(id="a") + CASE.format(id="b").replace("kb_search", "kb"))
    with pytest.raises(SuiteError, match=rf"^{unknown}:10: case 'b' names unknown tool 'kb'"):
        check_tools(load_suite(unknown), set(release().catalog))
    scorer = write(tmp_path, "[suite]\nname = 'x'\nscorers = ['nocolon']\n" + CASE.format(id="a"))
    with pytest.raises(SuiteError, match=rf"^{scorer}:1: \[suite\] scorers: .*package.module"):
        load_suite(scorer)
    lines = tmp_path / "suite.jsonl"
    good = {"id": "a", "category": "c", "input": "hi"}
    lines.write_text(json.dumps({"suite": {"name": "j"}}) + "\n" + json.dumps(good) + "\n{bad\n")
    with pytest.raises(SuiteError, match=rf"^{lines}:3: not JSON"):
        load_suite(lines)
    lines.write_text(json.dumps(good) + "\n\n" + json.dumps({**good, "id": "b"}) + "\n")
    assert [c.id for c in load_suite(lines).cases] == ["a", "b"]


def test_a_crash_or_a_timeout_fails_that_case_and_the_run_goes_on(tmp_path: Path) -> None:
    text = "".join(CASE.format(id=i) for i in ("ok-1", "crash", "slow", "ok-2"))
    suite = load_suite(write(tmp_path, text))
    for target in (targets.flaky, targets.async_flaky):
        run = run_suite(suite, target, release(), jobs=2, timeout_s=0.3)
        by_id = {r.case_id: r for r in run.results}
        assert by_id["ok-1"].passed and by_id["ok-2"].passed, by_id["ok-1"].messages
        assert by_id["crash"].outcome == "failed" and by_id["crash"].failures[0] == "crash"
        assert "the agent fell over" in (by_id["crash"].error or "") or "async" in (
            by_id["crash"].error or ""
        )
        assert by_id["slow"].outcome == "failed" and by_id["slow"].failures[0] == "timeout"
        records = {r.session_id: r for r in run.records}
        crashed, slow = by_id["crash"].session_id, by_id["slow"].session_id
        assert crashed is not None and slow is not None
        assert records[crashed].final_outcome == "failed"
        assert records[slow].status in ("killed", "failed")
        assert run.summary["taxonomy"]["crash"] == 1 and run.summary["taxonomy"]["timeout"] == 1


def test_wilson_interval_against_known_values() -> None:
    # reference values: statsmodels.stats.proportion.proportion_confint(method="wilson")
    for k, n, low, high in (
        (5, 10, 0.2365930905, 0.7634069095),
        (1, 10, 0.0178762131, 0.4041500329),
        (0, 10, 0.0, 0.2775327998),
        (10, 10, 0.7224672002, 1.0),
    ):
        got = wilson(k, n)
        assert math.isclose(got[0], low, abs_tol=1e-8) and math.isclose(got[1], high, abs_tol=1e-8)
    # Newcombe (1998), Stat. Med. 17:857, table I, method 3 (z = 1.96, four decimals)
    for k, n, low, high in ((81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605),
                            (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718)):  # fmt: skip
        got = wilson(k, n, z=1.96)
        assert round(got[0], 4) == low and round(got[1], 4) == high
    assert wilson(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson(3, 2)
