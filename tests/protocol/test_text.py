"""The shared cleaner for untrusted text, and `agentops audit list` going through it."""

from __future__ import annotations

import sys
import unicodedata
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentops_console.cli.main import app
from agentops_console.protocol.text import (
    UNSAFE_CATEGORIES,
    clean,
    clean_block,
    cut,
    error_line,
    one_line,
)
from tests.governance.gov_fixtures import new_db

CLEAN_CASES = [
    # (text, limit, expected)
    ("it-support", None, "it-support"),
    ("Zürich café 日本語 🙂 a\u00a0b", None, "Zürich café 日本語 🙂 a\u00a0b"),
    ("[bold red]pwn[/]", None, "[bold red]pwn[/]"),  # markup is not this module's job
    ("\x1b[31mred\x1b[0m", None, "\\x1b[31mred\\x1b[0m"),  # CSI
    ("\x1b]52;c;SGk=\x07", None, "\\x1b]52;c;SGk=\\x07"),  # OSC 52, BEL ended
    ("\x1bPq#0\x1b\\", None, "\\x1bPq#0\\x1b\\"),  # DCS, ST ended
    ("\x9b2J\x9d0;t\x9c\x90", None, "\\x9b2J\\x9d0;t\\x9c\\x90"),  # C1 CSI, OSC, ST, DCS
    ("a\r\nb\tc\x00\x7f", None, "a\\x0d\\x0ab\\x09c\\x00\\x7f"),
    ("\u202eevil\u202c", None, "\\u202eevil\\u202c"),  # right-to-left override
    ("\u2066x\u2069\u200f\u061c", None, "\\u2066x\\u2069\\u200f\\u061c"),  # isolates, marks
    ("zero\u200bwidth\ufeff\u00ad", None, "zero\\u200bwidth\\ufeff\\xad"),
    ("line\u2028para\u2029", None, "line\\u2028para\\u2029"),
    ("tag\U000e0041", None, "tag\\U000e0041"),
    ("lone \ud800 surrogate", None, "lone \\ud800 surrogate"),
    ("abcdef", 4, "abc…"),
    ("abcd", 4, "abcd"),
    ("abcdef", 1, "…"),
    ("\x1b" * 10, 3, "\\x1b\\x1b…"),  # cut first: a 100 KB value costs what a short one does
    (42, None, "42"),
]


@pytest.mark.parametrize(("text", "limit", "expected"), CLEAN_CASES)
def test_clean(text: object, limit: int | None, expected: str) -> None:
    shown = clean(text, limit)
    assert shown == expected
    assert not [c for c in shown if unicodedata.category(c) in UNSAFE_CATEGORIES]
    assert clean(shown, None) == shown  # cleaning twice changes nothing


ONE_LINE_CASES = [
    # (text, limit, empty, expected)
    ("  a\n\n b\t c  ", None, "", "a b c"),
    ("boom\r\n at line 3", None, "", "boom at line 3"),
    ("\u202eexe.txt\n", None, "", "\\u202eexe.txt"),
    ("x" * 10 + "\n" + "y" * 10, 12, "", "xxxxxxxxxx …"),
    ("  \n ", None, "?", "?"),
    ("\x1b[2J  cleared", 8, "", "\\x1b[2J cl…"),
]


@pytest.mark.parametrize(("text", "limit", "empty", "expected"), ONE_LINE_CASES)
def test_one_line(text: str, limit: int | None, empty: str, expected: str) -> None:
    assert one_line(text, limit, empty) == expected


def test_error_line_names_the_type_when_the_message_is_empty() -> None:
    assert error_line(TimeoutError(), 300) == "TimeoutError"
    assert error_line(ValueError("bad\n\x1b[31m\u202e value"), 300) == (
        "bad \\x1b[31m\\u202e value"
    )


def test_clean_block_keeps_lines_and_tabs() -> None:
    assert clean_block("a\tb\nc\u202e\x1b\r") == "a\tb\nc\\u202e\\x1b\\x0d"
    assert clean_block("abcdef", 4) == "abc…"


def test_cut() -> None:
    assert cut("abc", None) == "abc" and cut("abc", 3) == "abc" and cut("abcd", 3) == "ab…"


def test_the_unsafe_list_covers_every_control_format_and_separator_character() -> None:
    """The ranges are listed by hand (fast import); this checks them against this Python's
    Unicode database, so a new format character cannot slip through."""
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        unsafe = unicodedata.category(char) in UNSAFE_CATEGORIES
        escaped = clean(char, None) != char
        # the list may run ahead of an older Python's database (U+13439 is Cf from
        # Unicode 15): then it escapes a character that is unassigned there, never a letter
        assert escaped == unsafe or (escaped and not char.isprintable()), hex(code)
        if char not in "\t\n":
            assert (clean_block(char) != char) == escaped, hex(code)


def test_audit_list_shows_a_right_to_left_override_as_a_visible_escape(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An agent's text in the audit log (here an action's target and error) must not
    reorder the operator's terminal line: U+202E once passed `literal` untouched."""
    gdb = new_db(tmp_path)
    with gdb.transaction("admin") as tx:
        tx.audit(
            "release.push",
            "it-support\u202etxt.exe",
            details={"error": "agent said \u2066hi\u2069 \x1b[2J"},
        )
    gdb.close()
    monkeypatch.setenv("AGENTOPS_DB", str(tmp_path / "gov.db"))
    result = CliRunner().invoke(app, ["audit", "list"])
    assert result.exit_code == 0, result.stderr
    assert "it-support\\u202etxt.exe" in result.stdout
    assert "\\u2066hi\\u2069" in result.stdout  # the details' JSON escapes ESC itself
    header, row = result.stdout.splitlines()
    assert row.index("{") == header.index("DETAILS")  # widths count the escapes as shown
    for raw in ("\u202e", "\u2066", "\u2069", "\x1b"):
        assert raw not in result.stdout


def test_slack_messages_show_bidi_and_escape_sequences_as_escapes() -> None:
    """Slack renders U+202E too: an agent's summary must not reorder the page's text."""
    from datetime import UTC, datetime

    from agentops_console.watch.sinks.notice import Notice
    from agentops_console.watch.sinks.payloads import slack_payload

    notice = Notice.model_validate(
        {
            "state": "trigger",
            "incident_id": "42",
            "agent": "it-support",
            "cause": "runaway_loop",
            "severity": "critical",
            "summary": "retried \u202efdp.exe <!channel>\n\x1b[2Jagain",
            "detected_at": datetime(2026, 1, 1, tzinfo=UTC),
            "session_id": "s-\u20661",
        }
    )
    body = slack_payload(notice)
    dumped = str(body)
    for raw in ("\u202e", "\u2066", "\x1b"):
        assert raw not in dumped
    assert body["blocks"][1]["text"]["text"] == (
        "retried \\u202efdp.exe &lt;!channel&gt;\n\\x1b[2Jagain"
    )
