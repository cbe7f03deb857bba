"""Server-Sent Events: the encoder (pure) and the stream format.

Follows the WHATWG event-stream rules: a payload is split on ``\\r\\n``,
``\\r`` and ``\\n`` into ``data:`` lines (so SSE delivers every line break
as ``\\n``), and ``id``/``event`` never contain a line break.
"""

from __future__ import annotations

import re

from ..message import DEFAULT_EVENT, GAP_EVENT, Gap, Message, dumps
from .base import StreamFormat

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
CONTENT_TYPE = "text/event-stream; charset=utf-8"
HEARTBEAT = b":\n\n"


def encode_event(data: str, event: str | None = None, event_id: int | None = None) -> bytes:
    """One SSE event: optional ``id:`` and ``event:`` fields, ``data:`` lines, blank line."""
    fields = []
    if event_id is not None:
        fields.append(f"id: {event_id}\n")
    if event is not None and event != DEFAULT_EVENT:
        fields.append(f"event: {event}\n")
    # "data: " with the space: a parser strips one leading space, so a line
    # that itself starts with a space survives.
    fields.extend(f"data: {line}\n" for line in _LINE_BREAK.split(data))
    fields.append("\n")
    return "".join(fields).encode("utf-8")


def payload_text(data: object) -> str:
    """A ``str`` payload goes out as its text, anything else as compact JSON."""
    return data if isinstance(data, str) else dumps(data)


def encode_message(message: Message) -> bytes:
    return encode_event(payload_text(message.data), message.event, message.id)


def encode_gap(gap: Gap) -> bytes:
    """The gap notice: ``event: gap``, JSON data, and no ``id:`` so the
    browser's ``Last-Event-ID`` keeps pointing at the last real message."""
    return encode_event(dumps(gap.to_dict()), GAP_EVENT)


def encode_retry(seconds: float) -> bytes:
    """The ``retry:`` field that opens every stream (milliseconds)."""
    return b"retry: %d\n\n" % round(seconds * 1000)


def encode_position(position: int) -> bytes:
    """An ``id:`` with no data: the browser stores it as its last event id
    without firing an event. Sent after ``retry:``, it makes a browser that
    loses the connection before the first message resume from where it
    started, not from "now"."""
    return b"id: %d\n\n" % position


SSE_FORMAT = StreamFormat(
    content_type=CONTENT_TYPE,
    encode_message=encode_message,
    encode_gap=encode_gap,
    heartbeat=HEARTBEAT,
)
