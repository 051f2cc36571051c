"""`agentops status` and `agentops console` option handling, through the real Typer app."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from agentops_console.cli import console_cmds

from .agents import TOKEN, TOKEN_ENV, running
from .fleetdata import EVIL


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> typer.Typer:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    monkeypatch.setenv("AGENTOPS_DB", str(tmp_path / "absent.db"))
    app = typer.Typer()
    console_cmds.register(app)
    return app


def _dead_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def test_status_json_lists_fleet_and_reports_the_unreachable(cli: typer.Typer) -> None:
    with running() as rt:
        rt.session(workflow="password-reset", principal="user-1", session_id="s1")
        dead = _dead_url()
        result = CliRunner().invoke(
            cli,
            [
                "status",
                "--json",
                "--endpoint",
                str(rt.url),
                "--endpoint",
                dead,
                "--token-env",
                TOKEN_ENV,
            ],
        )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    live, down = doc["agents"]
    assert live["reachable"] and live["agent"]["agent"] == "it-support"
    assert [s["id"] for s in live["sessions"]] == ["s1"]
    assert not down["reachable"] and "unreachable" in down["error"]
    assert f"{dead} unreachable" in result.stderr


def test_status_exits_5_only_when_every_agent_is_unreachable(cli: typer.Typer) -> None:
    result = CliRunner().invoke(cli, ["status", "--endpoint", _dead_url()])
    assert result.exit_code == 5
    assert "Traceback" not in result.output


def test_status_text_shows_agent_strings_literally(cli: typer.Typer) -> None:
    with running() as rt:
        rt.session(workflow=EVIL, principal="\x1b[31mred", session_id="s1")
        result = CliRunner().invoke(
            cli, ["status", "--endpoint", str(rt.url), "--token-env", TOKEN_ENV]
        )
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.stdout
    assert "[bold red]pwn[/]" in result.stdout
    assert "\\x1b[31mred" in result.stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["status", "--endpoint", "ftp://x"], 2, "not an http(s) URL"),
        (["status"], 2, "no agents to watch"),
        (
            ["status", "--endpoint", "http://127.0.0.1:1", "--db", "/nonexistent/g.db"],
            6,
            "no governance",
        ),
        (["console", "--endpoint", "nope"], 2, "not an http(s) URL"),
    ],
)
def test_bad_options_fail_in_one_line(
    cli: typer.Typer, args: list[str], code: int, message: str
) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == code, result.output
    assert message in result.stderr and "Traceback" not in result.output
    assert result.stderr.startswith("agentops: error:")


def test_console_refuses_without_a_terminal(cli: typer.Typer) -> None:
    result = CliRunner().invoke(cli, ["console", "--endpoint", "http://127.0.0.1:1"])
    assert result.exit_code == 2
    assert "needs a terminal" in result.stderr


def test_console_rejects_a_malformed_keymap(cli: typer.Typer, tmp_path: Path) -> None:
    bad = tmp_path / "keys.toml"
    bad.write_text("[keys]\n'session.kill' = 3\n")
    result = CliRunner().invoke(
        cli, ["console", "--endpoint", "http://127.0.0.1:1", "--keymap", str(bad)]
    )
    assert result.exit_code == 2
    assert "[keys] must map binding ids" in result.stderr
