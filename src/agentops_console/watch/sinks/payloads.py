"""The JSON each kind of sink receives; pure functions, so tests assert them exactly.

Agent text (summaries, session ids) is untrusted: Slack's three control characters are
escaped (no `<!channel>` pings, no fake links), and lengths are cut to each service's
limits so a long summary is never the reason a page is refused.
"""

from __future__ import annotations

from typing import Any

from ...protocol.text import clean_block, cut
from .notice import NOTICE_SCHEMA, Notice

#: PagerDuty Events API v2 severities (critical, error, warning, info) by incident severity.
PAGERDUTY_SEVERITY = {"critical": "critical", "high": "error", "medium": "warning", "low": "info"}
PAGERDUTY_SUMMARY_MAX = 1024
PAGERDUTY_DEDUP_MAX = 255
SLACK_HEADER_MAX = 150
SLACK_TEXT_MAX = 3000
SLACK_SECTION_MAX = 2000
SLACK_FIELD_MAX = 200
_SLACK_ICON = {"critical": ":red_circle:", "high": ":large_orange_circle:"}


def _iso(notice: Notice) -> str:
    return notice.detected_at.isoformat()


def webhook_payload(notice: Notice) -> dict[str, Any]:
    """The generic webhook body (`agentops.notice/1`): the notice as it is, plus its key."""
    body: dict[str, Any] = {"schema": NOTICE_SCHEMA, "dedup_key": notice.dedup_key}
    body.update(notice.model_dump(mode="json"))
    return body


def slack_escape(text: str) -> str:
    """Slack mrkdwn needs exactly &, < and > escaped; control, bidi and format characters
    become visible escapes first, as on a terminal (line breaks stay)."""
    return clean_block(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(notice: Notice) -> dict[str, Any]:
    """Slack incoming-webhook message: `text` for notifications, blocks for the channel."""
    resolved = notice.state == "resolve"
    icon = ":white_check_mark:" if resolved else _SLACK_ICON.get(notice.severity, ":warning:")
    verb = "Resolved" if resolved else notice.severity.upper()
    headline = f"{verb}: {notice.cause} on {notice.agent}"
    text = slack_escape(f"{headline}: {notice.summary}")
    fields = [
        ("Agent", notice.agent),
        ("Cause", notice.cause),
        ("Severity", notice.severity),
        ("Incident", notice.incident_id),
        ("Detected", _iso(notice)),
        ("Runbook", notice.runbook or "none"),
    ]
    if notice.workflow:
        fields.append(("Workflow", notice.workflow))
    if notice.session_id:
        fields.append(("Session", notice.session_id))
    if resolved and notice.resolved_at:
        fields.append(("Resolved", notice.resolved_at.isoformat()))
    return {
        "text": cut(f"{icon} {text}", SLACK_TEXT_MAX),
        "blocks": [
            {
                "type": "header",
                "text": {
                    "type": "plain_text",
                    "text": cut(clean_block(headline), SLACK_HEADER_MAX),
                },
            },
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": cut(slack_escape(notice.summary), SLACK_SECTION_MAX),
                },
            },
            {
                "type": "section",
                "fields": [
                    {
                        "type": "mrkdwn",
                        "text": f"*{name}*\n{cut(slack_escape(value), SLACK_FIELD_MAX)}",
                    }
                    for name, value in fields
                ],
            },
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f"agentops watch · dedup key `{slack_escape(notice.dedup_key)}`",
                    }
                ],
            },
        ],
    }


def pagerduty_payload(notice: Notice, routing_key: str, group: str = "agentops") -> dict[str, Any]:
    """PagerDuty Events API v2: a trigger carries the alert, a resolve only its key."""
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": notice.state,
        "dedup_key": cut(notice.dedup_key, PAGERDUTY_DEDUP_MAX),
    }
    if notice.state == "resolve":
        return body
    custom: dict[str, Any] = {
        "incident_id": notice.incident_id,
        "runbook": notice.runbook,
        "session_id": notice.session_id,
        "workflow": notice.workflow,
        "incident_severity": notice.severity,
    }
    custom.update(notice.details)
    payload: dict[str, Any] = {
        "summary": cut(f"{notice.agent}: {notice.summary}", PAGERDUTY_SUMMARY_MAX),
        "source": notice.agent,
        "severity": PAGERDUTY_SEVERITY[notice.severity],
        "timestamp": _iso(notice),
        "component": notice.workflow or notice.agent,
        "group": group,
        "class": notice.cause,
        "custom_details": custom,
    }
    body["payload"] = payload
    body["client"] = "agentops watch"
    return body
