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
