"""Untrusted text stays data: no markup, no escape sequences, nothing hidden."""

from __future__ import annotations

from rich.console import Console

from agentops_console.console.text import clean, literal, literal_json

from .fleetdata import EVIL


def _render(text: object) -> str:
    console = Console(width=200, force_terminal=True, color_system="truecolor")
    with console.capture() as captured:
        console.print(text)
    return captured.get()


def test_markup_is_shown_literally_and_changes_no_style() -> None:
    text = literal("[bold red]pwn[/] [link=http://x]click[/link]")
    assert text.plain == "[bold red]pwn[/] [link=http://x]click[/link]"
    assert text.spans == []
    out = _render(text)
    assert "[bold red]pwn[/]" in out
    assert "\x1b]8;" not in out  # no hyperlink escape emitted


def test_escape_sequences_become_visible_escapes() -> None:
    text = literal("\x1b[31mred\x1b[0m\x07\r\n\x9b2J\u202e")
    assert "\x1b" not in text.plain
    assert text.plain == "\\x1b[31mred\\x1b[0m\\x07\\x0d\\x0a\\x9b2J\\u202e"
    assert "\x1b[31m" not in _render(literal("\x1b[31mred"))


def test_clean_truncates_and_json_arguments_escape_controls() -> None:
    assert clean("abcdef", limit=4) == "abc…"
    shown = literal_json({"q": EVIL})
    assert "\x1b" not in shown.plain
    assert "[bold red]pwn[/]" in shown.plain
    assert literal_json(object()).plain.startswith('"<object')


def test_timeline_shows_retrieval_arguments_and_signed_offsets() -> None:
    from datetime import timedelta

    from agentops_console.console.widgets.span_timeline import span_row
    from agentops_console.protocol.models import SessionDetail, Span

    from .fleetdata import summary

    detail = SessionDetail(**summary("s1", "it-support", minute=1).model_dump(), spans=[])
    retrieval = Span(
        id="r",
        session_id="s1",
        kind="retrieval",
        name="kb_search",
        started_at=detail.started_at + timedelta(seconds=2),
        arguments={"query": "VPN error 809", "top_k": 5},
    )
    early_llm = Span(
        id="l",
        session_id="s1",
        kind="llm",
        name="chat",
        started_at=detail.started_at - timedelta(milliseconds=150),
    )
    assert span_row(retrieval, detail)[4][0] == '{"query": "VPN error 809", "top_k": 5}'
    assert span_row(early_llm, detail)[0][0] == "-0.150s"
    assert span_row(retrieval, detail)[0][0] == "+2.000s"
