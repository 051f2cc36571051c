"""Arguments alike across command groups (issue 13, item 12): AGENT is positional in every
command about one agent (`--agent` stays as an alias where it was), incident ids get our
one line, and a group's help names only commands it has."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer.main
from typer.core import TyperArgument, TyperGroup, TyperOption
from typer.testing import CliRunner, Result

from agentops_console.cli.main import app

#: Groups outside governance (sessions, records) filter by --agent and are not covered here.
GOVERNANCE = ("agent", "owner", "release", "incident", "audit", "policy", "rollback")


def run(*args: str) -> Result:
    result = CliRunner().invoke(app, list(args))
    assert "Traceback" not in result.stdout + result.stderr
    return result


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AGENTOPS_DB", str(tmp_path / "gov.db"))
    monkeypatch.setenv("AGENTOPS_OPERATOR", "admin")
    assert run("init").exit_code == 0
    for name in ("it-support", "billing"):
        assert run("agent", "add", name, "--endpoint", "http://127.0.0.1:9").exit_code == 0
        opened = run("incident", "open", name, "--summary", f"trouble on {name}")
        assert opened.exit_code == 0
    return tmp_path / "gov.db"


def test_every_governance_command_with_agent_takes_it_positionally() -> None:
    root = typer.main.get_command(app)
    assert isinstance(root, TyperGroup)
    checked = []
    for group_name in GOVERNANCE:
        group = root.commands[group_name]
        leaves = group.commands.items() if isinstance(group, TyperGroup) else [("", group)]
        for name, command in leaves:
            options = {o for p in command.params if isinstance(p, TyperOption) for o in p.opts}
            arguments = [p.name for p in command.params if isinstance(p, TyperArgument)]
            if "--agent" in options:
                assert "agent" in arguments, f"{group_name} {name}: --agent but no AGENT"
                checked.append(f"{group_name} {name}")
    assert set(checked) >= {"release list", "incident list", "audit list", "audit export"}


@pytest.mark.parametrize(
    "command",
    [("release", "list"), ("incident", "list"), ("audit", "list"), ("owner", "list")],
)
def test_lists_take_the_agent_positionally_like_owner_list(
    db: Path, command: tuple[str, str]
) -> None:
    positional = run(*command, "billing", "--json")
    assert positional.exit_code == 0, positional.stderr
    rows = json.loads(positional.stdout)
    assert all(r.get("agent") == "billing" for r in rows)
    if command != ("owner", "list"):  # owner list never had --agent
        alias = run(*command, "--agent", "billing", "--json")
        assert alias.exit_code == 0 and json.loads(alias.stdout) == rows


def test_agent_twice_and_different_is_one_line(db: Path) -> None:
    both = run("release", "list", "billing", "--agent", "it-support")
    assert both.exit_code == 2
    assert both.stderr == (
        "agentops: error: give the agent once: AGENT 'billing' and --agent 'it-support' differ\n"
    )
    assert run("audit", "list", "billing", "--agent", "billing").exit_code == 0


@pytest.mark.parametrize("command", ["show", "ack", "resolve", "note"])
def test_a_bad_incident_id_is_one_clear_line(db: Path, command: str) -> None:
    extra = ["text"] if command == "note" else []
    result = run("incident", command, "abc", *extra)
    assert result.exit_code == 2
    assert result.stderr == "agentops: error: incident id must be a number: 'abc'\n"


def test_incident_help_names_only_its_commands() -> None:
    root = typer.main.get_command(app)
    assert isinstance(root, TyperGroup)
    group = root.commands["incident"]
    assert isinstance(group, TyperGroup) and group.help
    sentence = group.help.split(":", 1)[1]
    named = [part.split()[0] for part in sentence.replace(";", ",").split(",")]
    assert named and set(named) <= set(group.commands), named
