"""Untrusted text stays data: no markup, no escape sequences, nothing hidden."""

from __future__ import annotations

import sys
import time
import unicodedata
from typing import Any

import pytest
from rich.console import Console

from agentops_console.console.text import (
    MAX_FIELD,
    clean,
    json_text,
    literal,
    sanitized,
)
from agentops_console.protocol.models import Approval

from .fleetdata import EVIL, approval, summary


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
    shown = json_text(sanitized({"q": EVIL}))
    assert "\x1b" not in shown
    assert "[bold red]pwn[/]" in shown and "\\x1b[31mred" in shown  # one backslash shown
    assert json_text(object()).startswith('"<object')


#: Every terminal-control family, each with a marker no real output contains.
HOSTILE = {
    "csi": "\x1b[2JHOSTILE-CLEAR",
    "osc2_bel": "\x1b]2;HOSTILE-TITLE\x07",
    "osc52_st": "\x1b]52;c;SE9TVElMRQ==\x1b\\",
    "osc8": "\x1b]8;;http://hostile.example\x1b\\link\x1b]8;;\x1b\\",
    "dcs": "\x1bPHOSTILE-DCS\x1b\\",
    "apc_pm_sos": "\x1b_HOSTILE-APC\x1b\\\x1b^HOSTILE-PM\x1b\\\x1bXHOSTILE-SOS\x1b\\",
    "c1_8bit": "\x9b2J\x9d2;HOSTILE\x9c\x90HOSTILE\x9c\x9f\x98\x9e",
    "bidi": "abc\u202edcb\u202a\u202b\u202c\u202d\u2066\u2067\u2068\u2069\u200e\u200f\u061c",
    "invisible": "it\u200bsup\u2060port\ufeff\u00ad\U000e0041",
    "lines": "one\r\ntwo\u2028three\u2029\x0b\x0c\x08\x7f",
    "surrogate": "lone \ud800 and \udfff",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_clean_leaves_no_character_a_terminal_acts_on(name: str) -> None:
    shown = clean(HOSTILE[name])
    for ch in shown:
        category = unicodedata.category(ch)
        assert category not in ("Cc", "Cf", "Cs", "Zl", "Zp"), (name, hex(ord(ch)))
    assert shown.isprintable()
    shown.encode("utf-8")  # lone surrogates would make the terminal write fail
    assert clean(shown) == shown  # cleaning twice changes nothing


def test_the_unsafe_list_covers_every_control_format_and_separator_character() -> None:
    """The sanitizer lists its ranges by hand (fast start); this checks them against this
    Python's Unicode database, so a new format character cannot slip through."""
    for code in range(sys.maxunicode + 1):
        ch = chr(code)
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp"):
            assert clean(ch) != ch, hex(code)


def test_ordinary_text_passes_unchanged_and_is_not_copied() -> None:
    for text in ("it-support", "Zürich café", "日本語のワークフロー", "emoji 🙂", "a\u00a0b"):
        assert clean(text) == text
    plain = summary("s-1")
    assert sanitized(plain) is plain  # nothing to clean: no copy per event


def test_sanitized_cleans_every_string_of_a_model_and_keeps_its_type() -> None:
    hostile = approval(
        "ap\x1b]52;c;x\x07",
        principal="\u202eevil",
        tool="\x1bPdcs",
        arguments={"k\x1b": ["\x9b2J", {"deep": "\u2066x"}], "n": 3, "ok": True},
        reason="why\r\n",
    )
    clean_copy = sanitized(hostile)
    assert isinstance(clean_copy, Approval) and clean_copy is not hostile
    assert hostile.id == "ap\x1b]52;c;x\x07"  # the original (raw ids for actions) untouched
    dumped = clean_copy.model_dump_json()
    for raw in ("\x1b", "\x9b", "\u202e", "\u2066", "\r"):
        assert raw not in clean_copy.model_dump_json() and raw not in str(clean_copy.arguments)
    assert clean_copy.arguments == {"k\\x1b": ["\\x9b2J", {"deep": "\\u2066x"}], "n": 3, "ok": True}
    assert "\\u202eevil" in dumped


def test_100kb_strings_are_capped_and_cost_no_more_than_short_ones() -> None:
    huge = "\x1b]52;c;" + "A" * 100_000 + "\x07"
    started = time.perf_counter()
    for _ in range(200):
        shown = clean(huge)
    per_call = (time.perf_counter() - started) / 200
    assert len(shown) <= MAX_FIELD * 4 and shown.endswith("…")
    assert per_call < 0.005, per_call  # measured ~10 µs; generous for a loaded box
    data: dict[str, Any] = {"list": list(range(100_000)), "deep": _nested(1000)}
    wide = sanitized(data)
    assert len(wide["list"]) == 101 and wide["list"][-1] == "… 99900 more"
    assert "…" in json_text(wide["deep"])


def _nested(depth: int) -> object:
    value: object = "bottom"
    for _ in range(depth):
        value = [value]
    return value


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


class _Tagged(str):
    """A str subclass: never trusted as a plain string."""


def test_sanitized_per_field_fast_path_still_cleans_nested_models_and_keeps_clean_ones() -> None:
    """The model loop checks plain strings and empty lists/dicts inline (no call per field,
    9 µs instead of 22 per event): hostile, long and str-subclass fields nested in an
    event's session are still cleaned, and a clean event is the same object."""
    from .fleetdata import event

    calm = event(5, "session_updated", session=summary("s-1"), data={})
    assert calm.session is not None and calm.session.flags == []
    assert sanitized(calm) is calm
    hostile = event(
        6,
        "session_updated",
        session=summary("s-2", workflow="w" * (MAX_FIELD + 50), principal=_Tagged("p\x1b[2J")),
        data={"note\x1b": ["\x9b"]},
    )
    cleaned = sanitized(hostile)
    assert cleaned is not hostile and cleaned.session is not None
    assert len(cleaned.session.workflow) <= MAX_FIELD
    assert "\x1b" not in cleaned.session.principal and "\x1b" not in str(cleaned.data)
    assert cleaned.data == {"note\\x1b": ["\\x9b"]}


def test_sanitized_looks_only_at_fields_that_can_hold_text_and_still_cleans_each() -> None:
    """Issue 12: sanitizing the summary of every event (2,000/s) walked each field and
    called itself for the budget and every flag: ~18 µs an event on a busy box. Fields
    whose type holds no text (numbers, times, literals, the budget) are now left out by
    the model's annotations; every one that can hold text is still checked, nested flags
    and kill info included, and a clean summary is still the same object."""
    from agentops_console.console import text
    from agentops_console.protocol.models import KillInfo, SessionSummary

    from .fleetdata import NOW, flag

    planned = {name for name, *_ in text._plan(SessionSummary)}
    assert planned == {"id", "agent", "workflow", "principal", "tenant", "flags", "killed"}
    calm = summary("s-1", flags=[flag()], killed=KillInfo(operator="ops", reason="r", at=NOW))
    assert sanitized(calm) is calm
    evil = "x\x1b]52;c;x\x07\u202e"
    hostile_flag = [flag(), flag(message=evil), flag(span_id="y" * (MAX_FIELD + 5))]
    for field, value in [
        ("id", evil),
        ("agent", evil),
        ("workflow", "w" * (MAX_FIELD + 1)),
        ("principal", evil),
        ("tenant", evil),
        ("flags", hostile_flag),
        ("killed", KillInfo(operator=evil, reason="r", at=NOW)),
        ("killed", KillInfo(operator="ops", reason=evil, at=NOW)),
    ]:
        raw = calm.model_copy(update={field: value})
        cleaned = sanitized(raw)
        assert cleaned is not raw, field
        for shown in _strings(cleaned.model_dump()):
            assert shown == clean(shown) and len(shown) <= MAX_FIELD, (field, shown)


def _strings(value: object) -> list[str]:
    """Every string in a dumped model, nested ones included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


def test_sanitized_cleans_text_in_any_field_a_later_model_could_declare() -> None:
    """The fast path plans fields from annotations and leaves the rest to the full walk,
    so a field added later is covered by whatever its type is: a nested model, a list of
    text, a dict of lists of models, and a tuple or set of text (a model's typed field,
    which JSON never makes: they went through both paths untouched)."""
    from pydantic import BaseModel

    class Inner(BaseModel):
        note: str = ""

    class Later(BaseModel):
        inner: Inner | None = None
        texts: list[str] = []
        nested: dict[str, list[Inner]] = {}
        pair: tuple[str, str] | None = None
        many: tuple[str, ...] = ()
        tags: frozenset[str] = frozenset()
        labels: set[str] = set()
        either: str | int = 0

    evil = "x\x1b]52;c;x\x07\u202e[bold]"
    calm = Later(pair=("a", "b"), many=("c",), tags=frozenset({"d"}), labels={"e"})
    assert sanitized(calm) is calm
    for field, value in [
        ("inner", Inner(note=evil)),
        ("texts", [evil]),
        ("nested", {evil: [Inner(note=evil)]}),
        ("pair", ("ok", evil)),
        ("many", (evil,)),
        ("tags", frozenset({evil})),
        ("labels", {evil}),
        ("either", evil),
    ]:
        raw = Later.model_validate({field: value})
        cleaned = sanitized(raw)
        assert cleaned is not raw, field
        strings = _strings_in(cleaned.model_dump())
        assert strings, field
        assert all(s == clean(s) for s in strings), (field, strings)
        assert type(getattr(cleaned, field)) is type(getattr(raw, field)), field


def _strings_in(value: object) -> list[str]:
    """Every string in a dumped model: containers of every kind, keys included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings_in(k), *_strings_in(v))]
    if isinstance(value, (list, tuple, set, frozenset)):
        return [s for item in value for s in _strings_in(item)]
    return []
