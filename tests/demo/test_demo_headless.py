"""Headless runs of the real fleet: flags raised, operator actions, and a clean stop."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import typer
from typer.testing import CliRunner

from agentops_console.cli import demo_cmds
from agentops_console.demo.fleet import Fleet
from agentops_console.demo.headless import live_demo
from agentops_console.demo.scenario import DEFAULT_SCENARIO, load_scenario
from agentops_console.demo.script import trouble_order

SCENARIO = load_scenario()

# The demo command alone (the other contexts' commands are not this suite's business).
app = typer.Typer()
app.callback()(lambda: None)
demo_cmds.register(app)
SPEED = 12.0
DURATION = 2.5  # 30 scenario seconds: every scripted trouble of the first cycle


def _demo_threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith("agentops")}


def _port_closed(url: str) -> bool:
    parts = urlsplit(url)
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((parts.hostname or "127.0.0.1", parts.port or 0)) != 0


@pytest.fixture(scope="module")
def responded(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[dict[str, Any], list[str], set[str]]]:
    """One auto-responded run shared by the tests below (it takes ~DURATION seconds); its
    watcher's governance DB, records and pages are kept in a temporary directory."""
    before = _demo_threads()
    state = tmp_path_factory.mktemp("demo-watch")
    with live_demo(
        SCENARIO,
        seed=7,
        speed=SPEED,
        until_s=DURATION * SPEED,
        auto_respond=True,
        state_dir=state,
    ) as demo:
        urls = [e.url for e in demo.fleet.endpoints()]
        tokens = [e.token for e in demo.fleet.endpoints()]
        demo.fleet.wait(DURATION)
    report = demo.report()
    dumped = json.dumps(report)
    assert all(token not in dumped for token in tokens)  # never in a report
    yield report, urls, before


def test_auto_respond_kills_the_runaway_and_disables_the_export_workflow(
    responded: tuple[dict[str, Any], list[str], set[str]],
) -> None:
    report, _, _ = responded
    for kind in (
        "runaway_loop",
        "policy_denied",
        "budget_exceeded",
        "budget_warning",
        "low_confidence_retrieval",
        "killed",
        "workflow_disabled",
    ):
        assert report["flags"].get(kind, 0) >= 1, kind
    trouble = {t["kind"]: t for t in report["trouble"]}
    assert trouble["runaway_loop"]["status"] == "killed"
    assert trouble["budget_exhaustion"]["status"] == "stopped"
    assert "low_confidence_retrieval" in trouble["low_confidence_retrieval"]["flags"]
    assert "policy_denied" in trouble["cross_tenant_export"]["flags"]
    actions = {a["kind"]: a for a in report["actions"]}
    kill = actions["kill_session"]
    assert kill["ok"] and kill["result"] == "killed"
    assert kill["target"] == trouble["runaway_loop"]["session_id"]
    disable = actions["disable_workflow"]
    assert disable["ok"] and disable["target"] == "data-export"
    deny = actions["deny"]
    assert deny["ok"] and deny["result"] == "denied" and "admin" in deny["reason"]
    runaway = next(s for s in report["notable_sessions"] if s["trouble"] == "runaway_loop")
    assert runaway["killed_by"] == "demo-autoresponder"
    assert runaway["retries"] >= 4


def test_detections_are_timed_and_the_trouble_plays_in_script_order(
    responded: tuple[dict[str, Any], list[str], set[str]],
) -> None:
    report, _, _ = responded
    assert report["first_session_seen_s"] is not None and report["first_session_seen_s"] < 2
    for detection in report["detections"]:
        assert detection["seen_s"] >= detection["raised_s"]
        assert 0 <= detection["latency_ms"] < 2000
    scripted = [kind for _, kind, _ in trouble_order(SCENARIO, 7, DURATION * SPEED)]
    assert [t["kind"] for t in report["trouble"]] == scripted
    outage = report["outages"][0]
    assert outage["agent"] == "billing"
    assert outage["seen_down_s"] is not None and outage["seen_down_s"] >= outage["down_s"]
    billing = next(a for a in report["agents"] if a["agent"] == "billing")
    assert billing["restarts"] == 1 and billing["up"]
    assert outage["seen_up_s"] is not None  # the watcher found it again on the same port


def test_the_watcher_records_opens_incidents_and_pages(
    responded: tuple[dict[str, Any], list[str], set[str]],
) -> None:
    from agentops_console.console.history import RecordsReader

    report, _, _ = responded
    watch = report["watch"]
    assert watch["error"] is None, watch
    assert report["recorded"] > 0 and watch["lost"] == 0
    runaway = next(t for t in report["trouble"] if t["kind"] == "runaway_loop")
    incident = next(i for i in report["incidents"] if i["cause"] == "runaway_loop")
    assert incident["agent"] == "it-support"
    assert incident["session_id"] == runaway["session_id"]
    assert incident["mttd_s"] is not None and incident["mttd_s"] >= 0
    assert incident["runbook"]  # the repository's runaway-loop runbook
    assert report["pages"] >= len(report["incidents"]) >= 1
    lines = Path(watch["pages_file"]).read_text(encoding="utf-8").splitlines()
    pages = [json.loads(line) for line in lines]
    assert len(pages) == report["pages"]
    assert {p["schema"] for p in pages} == {"agentops.notice/1"}
    triggered = {(p["cause"], p["session_id"]) for p in pages if p["state"] == "trigger"}
    assert ("runaway_loop", runaway["session_id"]) in triggered
    # the console's history: the killed runaway session is in the records DB
    recorded = RecordsReader(watch["records"]).get("it-support", runaway["session_id"])
    assert recorded is not None and recorded.record.status == "killed"


def test_nothing_is_left_behind(responded: tuple[dict[str, Any], list[str], set[str]]) -> None:
    _, urls, before = responded
    assert _demo_threads() <= before
    assert all(_port_closed(url) for url in urls)


def test_cli_headless_json_without_auto_respond(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["demo", "--headless", "--json", "--duration", "1.2", "--speed", "15", "--seed", "3"],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["seed"] == 3 and report["auto_respond"] is False
    assert report["actions"] == []
    assert report["flags"]["runaway_loop"] >= 1
    assert report["flags"]["policy_denied"] >= 1
    runaway = next(t for t in report["trouble"] if t["kind"] == "runaway_loop")
    assert runaway["status"] != "killed"
    # 1.2 s at 15x is 18 scenario seconds: the outage (at 20 s) is reported as not reached
    assert report["not_reached"] == [
        {"kind": "agent_outage", "agent": "billing", "scenario_s": 20.0}
    ]


def test_cli_readable_report_seeded_db_and_bad_input(tmp_path: Path) -> None:
    from agentops_console.governance.audit import verify
    from agentops_console.governance.db import open_db

    runner = CliRunner()
    db = tmp_path / "demo.db"
    args = ["demo", "--headless", "--duration", "0.5", "--speed", "20", "--db", str(db)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "DETECTIONS" in result.stdout and "it-support" in result.stdout
    assert "WATCHER" in result.stdout and f"in {tmp_path / 'records.db'}" in result.stdout
    assert (tmp_path / "records.db").is_file()  # beside the governance DB it was given
    assert "3 agents registered" in result.stderr
    with open_db(db) as gdb:
        assert verify(gdb.conn).ok
    not_a_db = tmp_path / "notes.txt"
    not_a_db.write_text("hello", encoding="utf-8")
    args[-1] = str(not_a_db)
    refused = runner.invoke(app, args)
    assert refused.exit_code == 6 and "agentops: error:" in refused.stderr
    assert not_a_db.read_text(encoding="utf-8") == "hello"
    bad = runner.invoke(app, ["demo", "--headless", "--speed", "0"])
    assert bad.exit_code == 2 and "--speed" in bad.stderr and "Traceback" not in bad.output
    missing = runner.invoke(app, ["demo", "--headless", "--scenario", "/nonexistent.toml"])
    assert missing.exit_code == 2 and "cannot read scenario" in missing.stderr
    assert runner.invoke(app, ["demo", "--json"]).exit_code == 2
    for args in (["demo"], ["demo", "--duration", "5"]):  # no terminal here: never hang
        refused = runner.invoke(app, args)
        assert refused.exit_code == 2 and "--headless" in refused.stderr, args


def test_an_agent_that_stays_down(tmp_path: Path) -> None:
    text = DEFAULT_SCENARIO.read_text(encoding="utf-8").replace("down_s = 6\n", "")
    text = text.replace(
        'policy = "policies/it-support.cedar"',
        f'policy = "{DEFAULT_SCENARIO.parents[1] / "policies" / "it-support.cedar"}"',
    )
    path = tmp_path / "down.toml"
    path.write_text(text, encoding="utf-8")
    scenario = load_scenario(path)
    outage = next(t for t in scenario.trouble if t.kind == "agent_outage")
    assert outage.down_s is None
    speed = 40.0
    with Fleet(scenario, seed=7, speed=speed, until_s=30) as fleet:
        fleet.run()
        deadline = time.monotonic() + 5
        while not any(n.kind == "agent_down" for n in fleet.notes):
            assert time.monotonic() < deadline, "the outage never happened"
            time.sleep(0.02)
        time.sleep(12 / speed)  # well past when a 6 s outage would have ended
        assert fleet.runtime("billing") is None
        assert fleet.runtime("it-support") is not None
        kinds = [n.kind for n in fleet.notes if n.agent == "billing"]
        assert "agent_up" not in kinds
        url = next(e.url for e in fleet.endpoints() if e.agent == "billing")
        assert _port_closed(url)
