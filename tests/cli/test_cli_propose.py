"""`release propose` says what was proposed and what comes next (issue 13, item 13): each
role with its registered owner and standing, the evaluation the rubric requires, then the
gate; `--json` carries the same under "next"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from agentops_console.cli.main import app
from agentops_console.governance.paths import PROJECT_ROOT

POLICY = PROJECT_ROOT / "fixtures" / "policies" / "it-support.cedar"
RELEASES = PROJECT_ROOT / "fixtures" / "releases"


def ok(*args: str) -> Result:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.stderr
    return result


def propose(version: str, *extra: str, policy: Path = POLICY) -> Result:
    answers = str(RELEASES / f"it-support-{version}.toml")
    return ok("release", "propose", "it-support", version, "--answers", answers,
              "--policy", str(policy), "--author", "dev", *extra)  # fmt: skip


@pytest.fixture(autouse=True)
def agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(PROJECT_ROOT)
    monkeypatch.setenv("AGENTOPS_DB", str(tmp_path / "gov.db"))
    monkeypatch.setenv("AGENTOPS_OPERATOR", "admin")
    ok("init")
    ok("agent", "add", "it-support", "--endpoint", "http://127.0.0.1:9")
    owners = {"product": "pat", "security": "sam", "platform": "dev", "applied-ai": "ali"}
    for role, person in owners.items():  # operations has no owner; platform's is the author
        ok("owner", "set", "it-support", role, person)


def test_propose_names_the_signers_the_evaluation_and_the_gate() -> None:
    lines = propose("1.5.0").stdout.splitlines()
    assert lines[0].startswith("it-support 1.5.0 proposed: revision 1, rubric deployment,")
    text = "\n".join(lines)
    assert "agentops signoff it-support 1.5.0 --as PERSON" in text
    for role, owner in (("product", "pat"), ("security", "sam"), ("applied-ai", "ali")):
        assert any(line.split() == [role, "unsigned", owner] for line in lines), (role, text)
    assert "dev (an author of this release: cannot sign" in text
    assert "agentops owner set it-support operations PERSON" in text
    assert "agentops eval run fixtures/evals/it-support.toml --release it-support 1.5.0" in text
    assert any(line.split()[:1] == ["policy_adherence_high_risk"] for line in lines)
    assert lines[-1].startswith("then: agentops release check it-support 1.5.0")


def test_before_the_evaluation_rule_only_signers(tmp_path: Path) -> None:
    text = propose("1.3.2").stdout
    assert "sign-offs" in text and "eval run" not in text  # 1.3.2 predates from_version


def test_a_revision_says_earlier_sign_offs_are_stale(tmp_path: Path) -> None:
    propose("1.5.0")
    ok("signoff", "it-support", "1.5.0", "--approve", "--as", "sam")
    again = propose("1.5.0").stdout
    assert "unchanged" in again.splitlines()[0]
    assert any(line.split() == ["security", "approved", "sam"] for line in again.splitlines())
    changed = tmp_path / "changed.cedar"
    changed.write_text(POLICY.read_text() + "\n// reviewed again\n")
    revised = propose("1.5.0", policy=changed).stdout
    assert revised.splitlines()[0].startswith("it-support 1.5.0 revised: revision 2")
    assert "stale" in revised
    assert any(line.split() == ["security", "stale", "sam"] for line in revised.splitlines())


def test_json_keeps_the_release_and_adds_what_comes_next() -> None:
    data = json.loads(propose("1.5.0", "--json").stdout)
    assert data["outcome"] == "created" and len(data["content_hash"]) == 64
    signers = {s["role"]: s for s in data["next"]["signoffs"]}
    assert signers["security"] == {
        "role": "security",
        "owner": "sam",
        "status": "unsigned",
        "owner_is_author": False,
    }
    assert signers["platform"]["owner_is_author"] is True
    assert signers["operations"]["status"] == "no-owner"
    evaluation = data["next"]["evaluation"]
    assert evaluation["suite"].endswith("fixtures/evals/it-support.toml")
    assert {t["metric"] for t in evaluation["thresholds"]} >= {"policy_adherence_high_risk"}
