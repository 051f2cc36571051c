"""Sinks against a real HTTP receiver on loopback: exact payloads, retries, timeouts,
overflow. Delays are scaled down through the per-sink settings, never mocked away."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from agentops_console.watch.config import parse_config
from agentops_console.watch.errors import WatchConfigError
from agentops_console.watch.sinks import Notice, Notifier
from agentops_console.watch.sinks.spec import RetryPolicy, Sink

from .receiver import Receiver, running_receiver

DETECTED = datetime(2025, 3, 4, 3, 12, 9, tzinfo=UTC)
RESOLVED = datetime(2025, 3, 4, 3, 40, 0, tzinfo=UTC)
FAST = "backoff_initial_s = 0.01\nbackoff_max_s = 0.05\ntimeout_s = 2.0\n"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as r:
        yield r


def notice(state: str = "trigger", **changes: object) -> Notice:
    fields: dict[str, object] = {
        "state": state,
        "incident_id": "42",
        "agent": "it-support",
        "cause": "runaway_loop",
        "severity": "critical",
        "summary": "kb_search retried 4 times <!channel> & more",
        "detected_at": DETECTED,
        "runbook": "runaway-loop",
        "session_id": "s-1",
        "workflow": "password-reset",
    }
    if state == "resolve":
        fields["resolved_at"] = RESOLVED
    fields.update(changes)
    return Notice.model_validate(fields)


def sinks(toml: str, environ: dict[str, str] | None = None) -> list[Sink]:
    return parse_config(toml, "watch.toml").build_sinks(environ or {})


async def deliver(sink_list: list[Sink], *notices: Notice, drain_s: float = 5.0) -> Notifier:
    notifier = Notifier(sink_list)
    async with notifier:
        for n in notices:
            notifier.publish(n)
        assert await notifier.drain(drain_s)
    return notifier


async def test_slack_payload_exact(receiver: Receiver) -> None:
    toml = f'[[sink]]\nkind = "slack"\nurl_env = "SLACK_URL"\n{FAST}'
    notifier = await deliver(sinks(toml, {"SLACK_URL": receiver.url("/slack")}), notice())
    (body,) = receiver.bodies("/slack")
    field = "*{}*\n{}".format
    assert body == {
        "text": ":red_circle: CRITICAL: runaway_loop on it-support: kb_search retried 4 times"
        " &lt;!channel&gt; &amp; more",
        "blocks": [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": "CRITICAL: runaway_loop on it-support"},
            },
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "kb_search retried 4 times &lt;!channel&gt; &amp; more",
                },
            },
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": field("Agent", "it-support")},
                    {"type": "mrkdwn", "text": field("Cause", "runaway_loop")},
                    {"type": "mrkdwn", "text": field("Severity", "critical")},
                    {"type": "mrkdwn", "text": field("Incident", "42")},
                    {"type": "mrkdwn", "text": field("Detected", "2025-03-04T03:12:09+00:00")},
                    {"type": "mrkdwn", "text": field("Runbook", "runaway-loop")},
                    {"type": "mrkdwn", "text": field("Workflow", "password-reset")},
                    {"type": "mrkdwn", "text": field("Session", "s-1")},
                ],
            },
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": "agentops watch · dedup key `agentops-incident-42`",
                    }
                ],
            },
        ],
    }
    assert notifier.counters()["slack-1"].sent == 1


async def test_pagerduty_trigger_and_resolve_share_the_dedup_key(receiver: Receiver) -> None:
    toml = (
        '[[sink]]\nname = "pd"\nkind = "pagerduty"\nrouting_key_env = "PD_KEY"\n'
        f'url = "{receiver.url("/pd")}"\n{FAST}'
    )
    environ = {"PD_KEY": "R0UT1NGKEY"}
    await deliver(sinks(toml, environ), notice(), notice("resolve"))
    trigger, resolve = receiver.bodies("/pd")
    assert trigger == {
        "routing_key": "R0UT1NGKEY",
        "event_action": "trigger",
        "dedup_key": "agentops-incident-42",
        "client": "agentops watch",
        "payload": {
            "summary": "it-support: kb_search retried 4 times <!channel> & more",
            "source": "it-support",
            "severity": "critical",
            "timestamp": "2025-03-04T03:12:09+00:00",
            "component": "password-reset",
            "group": "agentops",
            "class": "runaway_loop",
            "custom_details": {
                "incident_id": "42",
                "runbook": "runaway-loop",
                "session_id": "s-1",
                "workflow": "password-reset",
                "incident_severity": "critical",
            },
        },
    }
    assert resolve == {
        "routing_key": "R0UT1NGKEY",
        "event_action": "resolve",
        "dedup_key": "agentops-incident-42",
    }


async def test_pagerduty_severity_mapping_and_limits(receiver: Receiver) -> None:
    toml = f'[[sink]]\nkind = "pagerduty"\nrouting_key_env = "K"\nurl = "{receiver.url("/pd")}"\n'
    long = notice(severity="high", summary="x" * 5000, workflow=None)
    await deliver(sinks(toml, {"K": "k"}), long, notice(severity="low"))
    first, second = receiver.bodies("/pd")
    assert first["payload"]["severity"] == "error"
    assert len(first["payload"]["summary"]) == 1024
    assert first["payload"]["component"] == "it-support"
    assert second["payload"]["severity"] == "info"


async def test_webhook_payload_and_bearer_token(receiver: Receiver) -> None:
    toml = (
        f'[[sink]]\nkind = "webhook"\nurl = "{receiver.url("/hook")}"\ntoken_env = "HOOK_TOKEN"\n'
    )
    await deliver(sinks(toml, {"HOOK_TOKEN": "hook-secret"}), notice(details={"seq": 7}))
    (got,) = receiver.at("/hook")
    assert got.headers["Authorization"] == "Bearer hook-secret"
    assert got.headers["Content-Type"] == "application/json"
    assert got.body == {
        "schema": "agentops.notice/1",
        "dedup_key": "agentops-incident-42",
        "state": "trigger",
        "incident_id": "42",
        "agent": "it-support",
        "cause": "runaway_loop",
        "severity": "critical",
        "summary": "kb_search retried 4 times <!channel> & more",
        "detected_at": "2025-03-04T03:12:09Z",
        "resolved_at": None,
        "runbook": "runaway-loop",
        "session_id": "s-1",
        "workflow": "password-reset",
        "details": {"seq": 7},
    }


async def test_retries_after_500_then_succeeds(receiver: Receiver) -> None:
    receiver.script("/hook", 500, 503)
    toml = f'[[sink]]\nkind = "webhook"\nurl = "{receiver.url("/hook")}"\n{FAST}'
    notifier = await deliver(sinks(toml), notice())
    bodies = receiver.bodies("/hook")
    assert len(bodies) == 3 and bodies[0] == bodies[2]
    counters = notifier.counters()["webhook-1"]
    assert (counters.sent, counters.retried, counters.failed) == (1, 2, 0)


async def test_429_is_retried(receiver: Receiver) -> None:
    receiver.script("/hook", 429)
    toml = f'[[sink]]\nkind = "webhook"\nurl = "{receiver.url("/hook")}"\n{FAST}'
    notifier = await deliver(sinks(toml), notice())
    assert len(receiver.bodies("/hook")) == 2
    assert notifier.counters()["webhook-1"].sent == 1


async def test_no_retry_on_400(receiver: Receiver) -> None:
    receiver.script("/hook", 400, 200)
    toml = f'[[sink]]\nkind = "webhook"\nurl = "{receiver.url("/hook")}"\n{FAST}'
    notifier = await deliver(sinks(toml), notice())
    assert len(receiver.bodies("/hook")) == 1
    counters = notifier.counters()["webhook-1"]
    assert (counters.sent, counters.retried, counters.failed) == (0, 0, 1)
    assert counters.last_error == "HTTP 400"


async def test_gives_up_after_max_attempts_when_nobody_listens() -> None:
    with socket.socket() as probe:  # a port nobody listens on (bound, then closed)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    toml = f'[[sink]]\nkind = "webhook"\nurl = "http://127.0.0.1:{port}/x"\nmax_attempts = 3\n'
    toml += "backoff_initial_s = 0.01\n"
    notifier = await deliver(sinks(toml), notice())
    counters = notifier.counters()["webhook-1"]
    assert (counters.sent, counters.retried, counters.failed) == (0, 2, 1)
    assert counters.last_error is not None and str(port) not in counters.last_error


async def test_backoff_grows_exponentially_with_jitter(receiver: Receiver) -> None:
    receiver.script("/hook", 500, 500, 500)
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    toml = f'[[sink]]\nkind = "webhook"\nurl = "{receiver.url("/hook")}"\n'
    toml += "backoff_initial_s = 0.5\nbackoff_max_s = 1.5\n"
    async with Notifier(sinks(toml), draw=lambda: 1.0, sleep=sleep) as notifier:
        notifier.publish(notice())
        assert await notifier.drain(5)
    assert delays == [0.5, 1.0, 1.5]
    policy = RetryPolicy(backoff_initial_s=1.0, backoff_max_s=30.0, jitter=0.5)
    assert policy.delay(1, 0.0) == 0.5 and policy.delay(3, 0.0) == 2.0
    assert policy.delay(10, 0.999) <= 30.0


async def test_hanging_receiver_times_out_and_never_delays_another_sink(
    receiver: Receiver,
) -> None:
    receiver.hang("/hang")
    toml = (
        f'[[sink]]\nname = "hangs"\nkind = "webhook"\nurl = "{receiver.url("/hang")}"\n'
        "timeout_s = 0.5\nmax_attempts = 1\n"
        f'[[sink]]\nname = "fine"\nkind = "webhook"\nurl = "{receiver.url("/fine")}"\n'
    )
    async with Notifier(sinks(toml)) as notifier:
        published = time.monotonic()
        assert notifier.publish(notice()) == 2
        assert notifier.publish(notice(incident_id="43")) == 2
        assert time.monotonic() - published < 0.05  # publishing never waits
        assert await notifier.drain(3)
    fine = receiver.at("/fine")
    assert len(fine) == 2 and fine[1].at - published < 0.4  # both before the first timeout
    hangs = notifier.counters()["hangs"]
    assert (hangs.sent, hangs.failed) == (0, 2)
    assert hangs.last_error == "no answer within 0.5 s"
    assert notifier.counters()["fine"].sent == 2


async def test_a_trickling_receiver_is_cut_off_at_the_attempt_deadline(
    receiver: Receiver,
) -> None:
    receiver.trickle("/slow")
    toml = f'[[sink]]\nkind = "webhook"\nurl = "{receiver.url("/slow")}"\n'
    toml += "timeout_s = 0.5\nmax_attempts = 1\n"
    started = time.monotonic()
    notifier = await deliver(sinks(toml), notice(), drain_s=5)
    assert time.monotonic() - started < 2.0
    counters = notifier.counters()["webhook-1"]
    assert (counters.sent, counters.failed) == (0, 1)
    assert counters.last_error == "no answer within 0.5 s"


async def test_queue_overflow_is_counted_and_memory_stays_bounded(receiver: Receiver) -> None:
    receiver.hang("/hang")
    toml = (
        f'[[sink]]\nname = "slow"\nkind = "webhook"\nurl = "{receiver.url("/hang")}"\n'
        "queue_size = 2\ntimeout_s = 5\nmax_attempts = 1\n"
    )
    notifier = Notifier(sinks(toml))
    async with notifier:
        queued = [notifier.publish(notice(incident_id=str(i))) for i in range(5)]
        assert queued == [1, 1, 0, 0, 0]
        counters = notifier.counters()["slow"]
        assert (counters.dropped, counters.queued) == (3, 2)
        assert counters.last_error == "queue full (2), notice dropped"
        await asyncio.sleep(0.1)  # the worker takes one; the queue has room for one more
        assert notifier.publish(notice(incident_id="9")) == 1
    # closing abandons the one in flight and the two queued: counted, not lost silently
    after = notifier.counters()["slow"]
    assert (after.dropped, after.queued) == (6, 0)


async def test_min_severity_filters_and_is_counted(receiver: Receiver) -> None:
    toml = f'[[sink]]\nkind = "webhook"\nmin_severity = "high"\nurl = "{receiver.url("/hook")}"\n'
    notifier = await deliver(sinks(toml), notice(severity="medium"), notice(severity="high"))
    assert len(receiver.bodies("/hook")) == 1
    assert notifier.counters()["webhook-1"].filtered == 1


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            '[[sink]]\nkind = "pagerduty"\nrouting_key_env = "PD_MISSING"\n',
            "watch.toml: sink 'pagerduty-1': routing_key_env: environment variable PD_MISSING"
            " is not set",
        ),
        (
            '[[sink]]\nname = "s"\nkind = "slack"\nurl_env = "NO_SLACK"\n',
            "watch.toml: sink 's': url_env: environment variable NO_SLACK is not set",
        ),
    ],
)
def test_missing_secret_is_one_line_at_startup(toml: str, message: str) -> None:
    with pytest.raises(WatchConfigError) as caught:
        sinks(toml)
    assert str(caught.value) == message


def test_secrets_stay_out_of_reprs() -> None:
    toml = '[[sink]]\nkind = "pagerduty"\nrouting_key_env = "K"\n'
    toml += '[[sink]]\nkind = "slack"\nurl_env = "S"\n'
    built = sinks(toml, {"K": "pd-secret", "S": "https://hooks.slack.test/T0/B0/slack-secret"})
    assert "secret" not in repr(built)
    assert built[0].url == "https://events.pagerduty.com/v2/enqueue"
