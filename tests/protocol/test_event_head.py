"""The light event path (protocol/client.py): EventHead keeps Event's own field types and
defaults, SSEReader parses event streams as the spec says (whatever the chunking), and the
light stream of a real runtime gives the same events as the full one."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from httpx_sse._decoders import SSEDecoder
from pydantic import BaseModel

from agentops_console.protocol.client import (
    AsyncAgentClient,
    EventHead,
    Position,
    SessionHead,
    SpanHead,
    SSEReader,
)
from agentops_console.protocol.models import Event, SessionSummary, Span
from agentops_console.runtime import Runtime

TOKEN = "head-token"


@pytest.mark.parametrize(
    ("head", "model"), [(EventHead, Event), (SessionHead, SessionSummary), (SpanHead, Span)]
)
def test_heads_keep_the_models_types_and_defaults(
    head: type[BaseModel], model: type[BaseModel]
) -> None:
    nested: dict[str, Any] = {"session": SessionHead, "span": SpanHead}
    for name, field in head.model_fields.items():
        full = model.model_fields[name]
        if name in nested:
            assert field.annotation == nested[name] | None and full.default is None
            continue
        assert field.annotation == full.annotation, name
        assert field.is_required() == full.is_required(), name
        if not full.is_required():
            assert field.default == full.default, name


def _spec(stream: bytes) -> list[bytes | None]:
    """httpx_sse's line-by-line decoder, as the reference: data, or None without data."""
    decoder = SSEDecoder()
    out: list[bytes | None] = []
    text = stream.decode()
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        sse = decoder.decode(line)
        if sse is not None:
            out.append(sse.data.encode() or None)
    return out


STREAM = (
    b"retry: 1000\nid: 4\n: agentops/1 event stream\n\n"
    b'id: 5\nevent: span_started\ndata: {"seq":5}\n\n'
    b": keep-alive\n\n"
    b'id: 6\r\ndata: {"seq":\r\ndata:6}\r\n\r\n'
    b'id: 7\rdata:{"seq":7}\r\r'
    b"\n\n\n"
    b"id: 12\r\n\r\n"
    b"id: x\n\n"
    b"event: gap\ndata: {}\n\n"
)


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, len(STREAM)])
def test_sse_reader_agrees_with_the_line_decoder_however_chunked(size: int) -> None:
    reader = SSEReader()
    got: list[bytes | int | None] = []
    for start in range(0, len(STREAM), size):
        got += reader.feed(STREAM[start : start + size])
    # the same messages; httpx_sse also reports every extra blank line as a data-less one
    data = [d for d in got if isinstance(d, bytes)]
    assert data == [d for d in _spec(STREAM) if d]
    # a message with an id and no data gives the id (a position), one without either None
    assert got == [4, b'{"seq":5}', None, b'{"seq":\n6}', b'{"seq":7}', 12, None, b"{}"]


async def test_the_light_stream_gives_the_full_streams_events() -> None:
    rt = Runtime(agent="it", version="1.0.0", token=TOKEN)
    url = rt.start(host="127.0.0.1", port=0)
    try:
        for n in range(3):
            with rt.session("wf", f"user-{n}") as s, s.tool_call("t", {"q": n}) as call:
                call.output = {"n": n}
        light = frozenset({"session_started", "span_started", "span_ended", "session_ended"})
        async with AsyncAgentClient(url, TOKEN) as client:
            full = await _read(client.stream(0), 12)
            lean = await _read(client.stream_light(0, light), 12)
    finally:
        rt.stop()
    assert [e.type for e in lean] == [e.type for e in full]
    for a, b in zip(full, lean, strict=True):
        assert isinstance(a, Event)
        assert isinstance(b, EventHead) == (a.type in light)
        assert (b.seq, b.at, b.session_id) == (a.seq, a.at, a.session_id)
        if isinstance(b, EventHead):
            assert (b.session is None) == (a.session is None)
            if a.session is not None and b.session is not None:
                assert (b.session.id, b.session.status) == (a.session.id, a.session.status)
            if a.span is not None:
                assert b.span is not None
                assert (b.span.id, b.span.session_id) == (a.span.id, a.span.session_id)
                assert b.span.arguments == a.span.arguments


async def _read(stream: Any, count: int) -> list[Any]:
    out: list[Any] = []

    async def take() -> None:
        async for event in stream:
            if event is not None and not isinstance(event, Position):  # Position: opening
                out.append(event)
                if len(out) == count:
                    return

    await asyncio.wait_for(take(), 10)
    await stream.aclose()
    return out
