"""Options every command of the same kind shares, checked over the whole Typer app: a new
command cannot forget one of them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.core import TyperGroup, TyperOption
from typer.testing import CliRunner

from agentops_console.cli.main import app


def _commands(group: Any, path: str = "agentops") -> Iterator[tuple[str, Any]]:
    """Every leaf command with its full name (typer vendors its own click)."""
    if isinstance(group, TyperGroup):
        for name, command in group.commands.items():
            yield from _commands(command, f"{path} {name}")
    else:
        yield path, group


def _option_names(command: Any) -> dict[str, set[str]]:
    """Each option's names, keyed by every name it answers to."""
    found: dict[str, set[str]] = {}
    for param in command.params:
        if isinstance(param, TyperOption):
            names = set(param.opts) | set(param.secondary_opts)
            for name in names:
                found[name] = names
    return found


def test_every_command_with_as_also_takes_operator_and_the_reverse() -> None:
    commands = list(_commands(typer.main.get_command(app)))
    acting = [path for path, c in commands if "--as" in _option_names(c)]
    assert len(acting) >= 20, acting  # the walk really reached the governance commands
    for path, command in commands:
        options = _option_names(command)
        if "--as" in options or "--operator" in options:
            assert options.get("--as") == options.get("--operator") == {"--as", "--operator"}, (
                f"{path}: --as and --operator must be one option"
            )


def test_operator_is_recorded_like_as(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTOPS_DB", str(tmp_path / "gov.db"))
    monkeypatch.delenv("AGENTOPS_OPERATOR", raising=False)
    runner = CliRunner()
    assert runner.invoke(app, ["init", "--operator", "ines"]).exit_code == 0
    added = runner.invoke(
        app, ["agent", "add", "a1", "--endpoint", "http://127.0.0.1:9", "--operator", "olga"]
    )
    assert added.exit_code == 0, added.stderr
    rows = json.loads(runner.invoke(app, ["audit", "list", "--json"]).stdout)
    assert [(r["action"], r["actor"]) for r in rows] == [
        ("governance.init", "ines"),
        ("agent.add", "olga"),
    ]
