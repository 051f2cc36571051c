"""The README's tour, command by command, against a real demo fleet and its kept DB.

The `agentops ...` lines of the tour's shell blocks are taken from README.md itself, so a
command that stops working (or a README edit that breaks one) fails here. Steps that need
a person (the interactive review, the console's `i` key) are played by their scripted
equivalents, which the README names too.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentops_console.cli.main import app
from agentops_console.demo.fleet import Fleet, token_env
from agentops_console.demo.scenario import load_scenario
from agentops_console.demo.seed import seed_governance

ROOT = Path(__file__).parents[2]
OWNERS = ("maya.product", "sam.security", "pat.platform", "ada.appliedai", "otto.ops")


def tour_commands() -> list[list[str]]:
    text = (ROOT / "README.md").read_text("utf-8")
    tour = text[text.index("## A five-minute tour") : text.index("## Embed the runtime")]
    commands: list[list[str]] = []
    for block in re.findall(r"```sh\n(.*?)```", tour, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words and words[0] == "agentops":
                commands.append(words[1:])
    return commands


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(ROOT)  # the tour runs from the checkout: fixtures/... paths
    monkeypatch.setenv(token_env("it-support"), "demo-token")
    monkeypatch.setenv("AGENTOPS_DB", str(tmp_path / "demo.db"))
    monkeypatch.delenv("AGENTOPS_OPERATOR", raising=False)
    with Fleet(load_scenario(), speed=1) as running:
        seed_governance(tmp_path / "demo.db", running)
        yield tmp_path / "demo.db"


def run(args: list[str]) -> str:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, f"agentops {shlex.join(args)}: {result.stderr}"
    return result.stdout


def test_every_tour_command_works_in_order(fleet: Path) -> None:
    commands = tour_commands()
    assert len(commands) >= 9, commands
    for words in commands:
        # files the tour writes (the audit checkpoint) go to the test's dir, not the checkout
        args = [
            str(fleet.parent / word) if prev in ("--out", "--checkpoint") else word
            for prev, word in zip(["", *words[:-1]], words, strict=True)
        ]
        if args[0] == "signoff":  # the interactive review, as a script would do it
            for person in OWNERS:
                run([*args[:3], "--approve", "--as", person])
            run(["release", "promote", "it-support", args[2]])  # the version the tour signs
            run(["policy", "push", "it-support"])
            continue
        if args[0] == "release" and args[1] == "check":
            result = CliRunner().invoke(app, args)
            assert result.exit_code == 1 and "not signed" in result.stdout  # nobody yet
            # and the candidate's behaviour fails the gate, with the metric and threshold
            assert "evaluation: policy_adherence_high_risk is" in result.stdout, result.stdout
            assert "material_regressions_per_1000" in result.stdout  # and its replay
            continue
        if args[:2] == ["incident", "ack"]:  # step 5 opens it with `i` in the console
            run(["incident", "open", "it-support", "--summary", "runaway loop"])
        run(args)
    assert "rolled_back" in run(["release", "list", "--agent", "it-support"])
    assert "intact" in run(["audit", "verify"])
