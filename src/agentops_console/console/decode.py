"""The console's event decoder: a full `Event`, less the span it never shows.

Validating an event is the largest single cost per event at 20,000 sessions, and a span
is ~40 % of it. No live table reads an event's span, and the detail view fetches the
session's spans from the agent itself (`app.fetch_detail`), so the console validates
everything else exactly as `Event` does and leaves the span unread. What is decoded
here still goes through the store, which cleans it (`text.sanitized`) before any view.
"""

from __future__ import annotations

from pydantic import Field, ValidationError

from ..protocol.models import Event, Span

#: A key no agent sends, so the JSON `span` is an unknown key, skipped without building it.
_UNREAD = "span (not read by the console)"


class SpanlessEvent(Event):
    """An `Event` whose `span` is always None; every other field validated as in Event."""

    span: Span | None = Field(default=None, validation_alias=_UNREAD)


def decode_event(data: bytes) -> Event | None:
    """An SSE message's data as an Event without its span; None for junk."""
    try:
        event = SpanlessEvent.model_validate_json(data)
    except ValidationError:
        return None
    event.span = None  # even if an agent sent the unread key itself
    return event
