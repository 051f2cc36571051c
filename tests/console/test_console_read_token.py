"""`--readonly` with the read-only token: the console reads with it and never holds the
control token, against a real runtime that has both (control routes answer 403 to it)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentops_console.console.launch import resolve
from agentops_console.governance.db import open_db
from agentops_console.governance.registry import add_agent
from agentops_console.protocol.client import EndpointError
from agentops_console.runtime import Runtime

from .agents import POLICY, TOOLS, until

CONTROL, READ = "control-token-7c1e", "read-token-52aa"
CONTROL_ENV, READ_ENV = "AGENTOPS_TEST_CONTROL_TOKEN", "AGENTOPS_TEST_READ_TOKEN"


@pytest.fixture
def rt() -> Iterator[Runtime]:
    runtime = Runtime(
        agent="it-support", version="1.4.0", token=CONTROL, read_token=READ, policy=POLICY,
        tools=TOOLS,
    )  # fmt: skip
    runtime.start(host="127.0.0.1", port=0)
    runtime.session(workflow="password-reset", principal="u", session_id="s1")
    try:
        yield runtime
    finally:
        runtime.stop()


def _registry(tmp_path: Path, url: str, read_env: str | None) -> Path:
    db = tmp_path / "gov.db"
    with open_db(db, create=True) as gdb:
        add_agent(
            gdb,
            actor="t",
            name="it-support",
            endpoint=url,
            token_env=CONTROL_ENV,
            read_token_env=read_env,
        )
    return db


async def test_readonly_reads_with_the_read_token_and_never_holds_the_control_one(
    rt: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentops_console.console.app import AgentOpsConsole

    assert rt.url is not None
    monkeypatch.setenv(CONTROL_ENV, CONTROL)
    monkeypatch.setenv(READ_ENV, READ)
    db = _registry(tmp_path, rt.url, READ_ENV)
    (source,) = resolve([], None, db, readonly=True).sources
    assert source.token_env == READ_ENV and source.resolve_token() == READ
    (control,) = resolve([], None, db).sources  # with actions: the control token
    assert control.token_env == CONTROL_ENV
    monkeypatch.delenv(CONTROL_ENV)  # read-only: the control token is not needed at all
    app = AgentOpsConsole([source], governance=None, readonly=True, refresh_s=0.05)
    async with app.run_test(size=(120, 30)):
        await until(lambda: ("it-support", "s1") in app.store.sessions, what="the snapshot")
        client = app.clients["it-support"]
        with pytest.raises(EndpointError) as refused:
            await client.kill("s1", "mallory", "the read token cannot act")
        assert refused.value.status == 403
    assert rt.get("s1").killed is None  # type: ignore[union-attr]


def test_readonly_falls_back_to_the_control_token_without_a_read_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CONTROL_ENV, CONTROL)
    monkeypatch.delenv(READ_ENV, raising=False)
    url = "http://127.0.0.1:1"
    (unset,) = resolve([], None, _registry(tmp_path, url, READ_ENV), readonly=True).sources
    assert unset.token_env == CONTROL_ENV  # the variable is named but not set
    (endpoint,) = resolve([url], CONTROL_ENV, None, read_token_env=READ_ENV, readonly=True).sources
    assert endpoint.token_env == CONTROL_ENV
    monkeypatch.setenv(READ_ENV, READ)
    (endpoint,) = resolve([url], CONTROL_ENV, None, read_token_env=READ_ENV, readonly=True).sources
    assert endpoint.token_env == READ_ENV
    (acting,) = resolve([url], CONTROL_ENV, None, read_token_env=READ_ENV).sources
    assert acting.token_env == CONTROL_ENV  # --read-token-env counts only with --readonly


def test_the_console_command_reads_with_read_token_env_in_a_terminal(
    rt: Runtime, tmp_path: Path
) -> None:
    """`agentops console --readonly --endpoint URL --token-env C --read-token-env R`, with a
    wrong control token: the snapshot arrives only if the read token is the one used."""
    from .test_console_terminal import Terminal

    assert rt.url is not None
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "TERM": "xterm-256color",
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "AGENTOPS_DB": str(tmp_path / "absent.db"),
        CONTROL_ENV: "wrong-control-token",
        READ_ENV: READ,
    }
    exe = str(Path(sys.executable).with_name("agentops"))
    options = ["--token-env", CONTROL_ENV, "--read-token-env", READ_ENV, "--readonly"]
    terminal = Terminal([exe, "console", "--endpoint", rt.url, *options], env)
    try:
        terminal.wait_for(rb"sessions 1 ", 0, timeout=60)
        terminal.wait_for(rb"READONLY", 0)
    finally:
        terminal.close()
