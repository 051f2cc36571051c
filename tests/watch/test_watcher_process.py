"""A real `agentops watch` process against real runtimes on loopback, a real governance DB,
a real records DB and a real HTTP receiver as the webhook."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agentops_console.governance.api import open_governance
from agentops_console.protocol.models import Budgets
from agentops_console.records.store import open_store
from agentops_console.runtime import Runtime, SessionKilled
from agentops_console.runtime.config import RuntimeConfig
from tests.loopback import url_of

from .receiver import Receiver, running_receiver

TOKEN = "watch-test-token"
TOKEN_ENV = "AGENTOPS_TEST_WATCH_TOKEN"


def new_runtime(agent: str = "it-support") -> Runtime:
    config = RuntimeConfig(budgets=Budgets(max_consecutive_tool_calls=1000))
    rt = Runtime(agent=agent, version="1.4.0", tenant="acme", token=TOKEN, config=config)
    rt.start(host="127.0.0.1", port=0)
    return rt


def ordinary(rt: Runtime, tools: int = 2) -> str:
    """A finished session with an LLM call and tool calls."""
    with rt.session("password-reset", "user-1") as s:
        s.llm_call("gpt-4o-mini", 100, 20)
        for i in range(tools):
            with s.tool_call("kb_search", {"query": f"q{i}"}) as call:
                call.output = {"hits": i}
        return s.id


def runaway(rt: Runtime, steps: int = 6) -> str:
    """The same step retried: a runaway_loop flag (critical) once past 3 retries."""
    try:
        with rt.session("password-reset", "user-2") as s:
            sid = s.id
            for _ in range(steps):
                with s.tool_call("kb_search", {"query": "same"}):
                    pass
    except SessionKilled:
        pass
    return sid


@dataclass
class Watcher:
    proc: subprocess.Popen[str]
    records: Path
    stderr: Path

    def log(self) -> str:
        return self.stderr.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


@dataclass
class Setup:
    tmp: Path
    receiver: Receiver
    gov: Path
    records: Path
    config: Path
    env: dict[str, str] = field(default_factory=dict)
    watchers: list[Watcher] = field(default_factory=list)

    def argv(self, *endpoints: str, extra: tuple[str, ...] = ()) -> list[str]:
        """`agentops` arguments of a watcher following `endpoints` into this setup's DBs."""
        args = ["watch", "--records", str(self.records), "--db", str(self.gov)]
        args += ["--config", str(self.config), *extra]
        for url in endpoints:
            args += ["--endpoint", url]
        if endpoints:
            args += ["--token-env", TOKEN_ENV]
        return args

    def start(
        self, *endpoints: str, extra: tuple[str, ...] = (), fsize_limit: int | None = None
    ) -> Watcher:
        """`agentops watch` in a process of its own; with `fsize_limit`, files it writes may
        not grow past that many bytes (RLIMIT_FSIZE, soft; the hard limit stays unlimited)."""
        args = (
            [sys.executable, "-c", _LIMITED.format(limit=fsize_limit)]
            if fsize_limit
            else [sys.executable, "-m", "agentops_console.cli.main"]
        )
        args += self.argv(*endpoints, extra=extra)
        err = self.tmp / f"watch-{len(self.watchers)}.log"
        proc = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=err.open("w"),
            env=self.env,
            text=True,
        )
        watcher = Watcher(proc, self.records, err)
        self.watchers.append(watcher)
        return watcher


#: The watcher under a file-size limit: a write past it fails with EFBIG (the signal it
#: would raise is ignored), which SQLite reports as a failed write: a full disk, for real.
_LIMITED = (
    "import resource, runpy, signal, sys;"
    "signal.signal(signal.SIGXFSZ, signal.SIG_IGN);"
    "resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, resource.RLIM_INFINITY));"
    "sys.argv = ['agentops', *sys.argv[1:]];"
    "runpy.run_module('agentops_console.cli.main', run_name='__main__')"
)

CONFIG = """\
[[sink]]
kind = "webhook"
name = "hook"
url = "{hook}"
timeout_s = 2.0

[[sink]]
kind = "slack"
name = "slack"
url = "{slack}"

[incidents]
cooldown_s = 600
unreachable_s = 2
"""


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    with watch_setup(tmp_path) as made:
        yield made


@contextmanager
def watch_setup(tmp_path: Path) -> Iterator[Setup]:
    """A governance DB, a watch.toml paging a real receiver, and the watchers started."""
    with running_receiver() as receiver:
        gov = tmp_path / "governance.db"
        open_governance(gov, create=True).close()
        config = tmp_path / "watch.toml"
        config.write_text(CONFIG.format(hook=receiver.url("/hook"), slack=receiver.url("/slack")))
        env = {**os.environ, TOKEN_ENV: TOKEN, "AGENTOPS_DB": str(gov)}
        env.pop("AGENTOPS_RECORDS", None)
        s = Setup(tmp_path, receiver, gov, tmp_path / "records.db", config, env)
        try:
            yield s
        finally:
            for watcher in s.watchers:
                if watcher.proc.poll() is None:
                    watcher.proc.kill()
                    watcher.proc.wait(10)


@contextmanager
def runtimes(count: int = 1) -> Iterator[list[Runtime]]:
    started = [new_runtime(f"agent-{i}" if count > 1 else "it-support") for i in range(count)]
    try:
        yield started
    finally:
        for rt in started:
            rt.stop()


def wait_for(check: Callable[[], Any], timeout: float = 15, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or check}")


def recorded(records: Path) -> list[tuple[str, str, str, int]]:
    """(agent, session_id, status, span_count) of every stored session, read-only."""
    if not records.exists():
        return []
    try:
        conn = sqlite3.connect(f"file:{records}?mode=ro", uri=True)
    except sqlite3.Error:
        return []
    try:
        return [
            (r[0], r[1], r[2], r[3])
            for r in conn.execute("SELECT agent, session_id, status, span_count FROM sessions")
        ]
    except sqlite3.Error:
        return []
    finally:
        conn.close()


def incidents(gov: Path) -> list[dict[str, Any]]:
    with open_governance(gov, create=False) as gdb:
        return [dict(r) for r in gdb.query("SELECT * FROM incidents ORDER BY id")]


def wait_live(watcher: Watcher, timeout: float = 15) -> None:
    wait_for(lambda: "live (first)" in watcher.log(), timeout, "the watcher to go live")


# -- recording ---------------------------------------------------------------------------
def test_finished_sessions_are_recorded_with_their_spans(setup: Setup) -> None:
    with runtimes() as (rt,):
        before = ordinary(rt)  # finished before the watcher starts: from the snapshot
        watcher = setup.start(url_of(rt))
        wait_live(watcher)
        after = [ordinary(rt, tools=3) for _ in range(5)]
        wait_for(lambda: len(recorded(setup.records)) == 6, what="6 sessions recorded")
        assert watcher.stop() == 0, watcher.log()
    rows = {r[1]: r for r in recorded(setup.records)}
    assert set(rows) == {before, *after}
    assert all(r[2] == "completed" for r in rows.values())
    assert rows[after[0]][3] == 4  # the LLM call and three tool calls
    with open_store(setup.records) as store:
        record = store.get(after[0])
        assert [s.tool_name for s in record.spans][1:] == ["kb_search"] * 3
        position = store.position("it-support")
        assert position is not None and position.last_seq > 0


# -- incidents and pages -----------------------------------------------------------------
def test_runaway_loop_opens_one_incident_with_runbook_and_flag_time_and_pages(
    setup: Setup,
) -> None:
    with runtimes() as (rt,):
        watcher = setup.start(url_of(rt))
        wait_live(watcher)
        sid = runaway(rt, steps=12)  # the flag, then many more events for the same cause
        rows = wait_for(lambda: incidents(setup.gov), what="an incident")
        hooks = wait_for(lambda: setup.receiver.bodies("/hook"), what="a webhook")
        slack = wait_for(lambda: setup.receiver.bodies("/slack"), what="a Slack message")
        detail = rt.session_detail(sid)
        assert detail is not None
        time.sleep(1.0)  # anything more would have arrived by now
        assert watcher.stop() == 0, watcher.log()
    flag = next(f for f in detail.flags if f.kind == "runaway_loop")
    assert len(incidents(setup.gov)) == 1
    (incident,) = rows
    assert incident["flag_kind"] == "runaway_loop"
    assert incident["runbook"] == "runaway-loop"
    assert incident["severity"] == "high"
    assert incident["session_id"] == sid
    assert incident["opened_by"] == "watch"
    assert _ts(incident["detected_at"]) == pytest.approx(flag.at.timestamp(), abs=1e-3)
    assert _ts(incident["started_at"]) == pytest.approx(detail.started_at.timestamp(), abs=1e-3)
    assert len(setup.receiver.bodies("/hook")) == 1
    (hook,) = hooks
    assert hook["schema"] == "agentops.notice/1"
    assert hook["state"] == "trigger"
    assert hook["incident_id"] == str(incident["id"])
    assert hook["cause"] == "runaway_loop" and hook["runbook"] == "runaway-loop"
    assert hook["session_id"] == sid and hook["dedup_key"] == f"agentops-incident-{incident['id']}"
    assert "runaway_loop on it-support" in slack[0]["text"]


def _ts(text: str) -> float:
    from agentops_console.governance.clock import parse_ts

    return parse_ts(text).timestamp()


def test_unreachable_agent_opens_an_incident_and_resolves_it_when_back(setup: Setup) -> None:
    with runtimes() as (rt,):
        url = url_of(rt)
        port = int(url.rsplit(":", 1)[1])
        watcher = setup.start(url)
        wait_live(watcher)
        rt.stop()
        rows = wait_for(lambda: incidents(setup.gov), timeout=20, what="unreachable incident")
        assert rows[0]["flag_kind"] == "agent_unreachable"
        assert rows[0]["runbook"] == "unreachable-agent"
        again = Runtime(agent="it-support", version="1.4.0", token=TOKEN)
        again.start(host="127.0.0.1", port=port)
        try:
            done = wait_for(
                lambda: [b for b in setup.receiver.bodies("/hook") if b["state"] == "resolve"],
                timeout=40,
                what="a resolve notice",
            )
        finally:
            again.stop()
        assert watcher.stop() == 0, watcher.log()
    assert done[0]["incident_id"] == str(rows[0]["id"])
    assert incidents(setup.gov)[0]["status"] == "resolved"


# -- refusing to start ---------------------------------------------------------------------
def test_a_rules_file_with_a_typo_stops_the_watcher_in_one_line(setup: Setup) -> None:
    setup.config.write_text(
        '[[rule]]\nname = "k"\nwhen = { flag = "runaway_loop" }\nthen = "kil"\n'
    )
    watcher = setup.start("http://127.0.0.1:9")
    assert watcher.proc.wait(30) == 2
    lines = watcher.log().strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"agentops: error: {setup.config}:4: rule 1 ('k')")
    assert "unknown action 'kil'" in lines[0]
    assert not setup.records.exists()


def test_a_second_watcher_on_the_same_records_db_refuses(setup: Setup) -> None:
    with runtimes() as (rt,):
        first = setup.start(url_of(rt))
        wait_live(first)
        second = setup.start(url_of(rt))
        assert second.proc.wait(30) == 6
        lines = second.log().strip().splitlines()
        assert len(lines) == 1, lines
        assert "already being written by another process" in lines[0]
        assert f"(pid {first.proc.pid})" in lines[0]
        assert first.proc.poll() is None
        assert first.stop() == 0


# -- health --------------------------------------------------------------------------------
def _status(setup: Setup) -> tuple[int, dict[str, Any]]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentops_console.cli.main",
            "watch",
            "--status",
            "--json",
            "--records",
            str(setup.records),
        ],
        capture_output=True,
        text=True,
        env=setup.env,
        timeout=30,
        check=False,
    )
    return done.returncode, json.loads(done.stdout)


def test_status_shows_agents_records_and_sinks_and_sigterm_stops_cleanly(setup: Setup) -> None:
    with runtimes() as (rt,):
        watcher = setup.start(url_of(rt))
        wait_live(watcher)
        for _ in range(3):
            ordinary(rt)
        runaway(rt)
        wait_for(lambda: setup.receiver.bodies("/hook"), what="a webhook")

        def settled() -> dict[str, Any] | None:
            code, report = _status(setup)
            agent = report["agents"].get("it-support", {})
            ok = code == 0 and agent.get("recorded_total") == 4 and agent.get("state") == "live"
            return report if ok and report["sinks"]["hook"]["sent"] == 1 else None

        report = wait_for(settled, what="a settled health report")
        agent = report["agents"]["it-support"]
        assert agent["lag_s"] == 0 and agent["pending"] == 0 and agent["gaps_unfilled"] == 0
        assert agent["last_event_at"] is not None
        assert report["incidents"]["opened"] == 1
        assert report["pid"] == watcher.proc.pid
        assert watcher.stop() == 0
        assert watcher.log().rstrip().endswith("agentops watch: stopped")
    code, report = _status(setup)
    assert code == 1 and report["running"] is False and report["state"] == "stopped"
    assert report["agents"]["it-support"]["recorded_total"] == 4


def export_policy(policy_id: str) -> str:
    """Exports of another tenant's data are refused: with an id that says so, or (another
    id) so that only the call's `tenant` argument tells a cross-tenant export apart."""
    return f"""\
permit (principal, action, resource);
@id("{policy_id}")
forbid (principal, action == Action::"call_tool", resource)
when {{
  resource.category == "export" &&
  context.arguments has tenant && context.arguments.tenant != context.tenant
}};
"""


EXPORT_POLICY = export_policy("no-cross-tenant-export")


def test_many_alerts_of_one_cause_open_one_incident_and_rules_run_dry(setup: Setup) -> None:
    from agentops_console.runtime import PolicyDenied, ToolSpec

    setup.config.write_text(
        setup.config.read_text()
        + '\n[[rule]]\nname = "stop-exports"\nwhen = { flag = "policy_denied" }\n'
        'then = "disable_workflow"\n'
    )
    config = RuntimeConfig(budgets=Budgets(max_consecutive_tool_calls=1000))
    rt = Runtime(
        agent="billing",
        version="2.0",
        tenant="acme",
        token=TOKEN,
        config=config,
        policy=EXPORT_POLICY,
        tools=[ToolSpec(name="export_data", version="0.9", category="export")],
    )
    rt.start(host="127.0.0.1", port=0)
    try:
        watcher = setup.start(url_of(rt), extra=("--dry-run",))
        wait_live(watcher)
        for _ in range(5):  # five sessions, each with two denied cross-tenant exports
            with rt.session("data-export", "user-9") as s:
                for _ in range(2):
                    try:
                        with s.tool_call("export_data", {"tenant": "globex"}):
                            pass
                    except PolicyDenied:
                        pass
        wait_for(lambda: setup.receiver.bodies("/hook"), what="a webhook")
        wait_for(lambda: "dry run: would disable workflow data-export" in watcher.log())
        wait_for(lambda: len(recorded(setup.records)) == 5, what="5 sessions recorded")
        time.sleep(1.0)
        assert watcher.stop() == 0, watcher.log()
    finally:
        rt.stop()
    rows = incidents(setup.gov)
    assert [(r["flag_kind"], r["runbook"], r["severity"]) for r in rows] == [
        ("cross_tenant_export", "cross-tenant-export", "critical")
    ]
    assert len(setup.receiver.bodies("/hook")) == 1
    assert watcher.log().count("dry run: would disable") == 1  # once per (rule, workflow)
    assert not rt.disabled  # a dry run calls no agent


_PROBE = """
import json, sys
from agentops_console.cli.main import app
try:
    app(sys.argv[1:], standalone_mode=False)
except SystemExit:
    pass
except Exception as exc:
    print(type(exc).__name__, exc, file=sys.stderr)
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def test_watch_does_not_load_the_console(tmp_path: Path) -> None:
    """`agentops watch` checks its --endpoint URLs without importing the console, which
    loads Textual (about 1 s of a watcher's start-up, more on a loaded box)."""
    env = {k: v for k, v in os.environ.items() if k != "AGENTOPS_TEST_UNSET"}
    args = ["watch", "--records", str(tmp_path / "r.db"), "--endpoint", "http://127.0.0.1:9"]
    args += ["--token-env", "AGENTOPS_TEST_UNSET"]
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    *_, modules = done.stderr.strip().splitlines()
    assert "token variable AGENTOPS_TEST_UNSET is not set" in done.stderr  # past the URL
    loaded = {m.split(".")[0] for m in json.loads(modules)}
    assert "textual" not in loaded
    assert "agentops_console.console" not in json.loads(modules)
