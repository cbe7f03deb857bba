"""Server-Sent Events: the encoder (pure) and the stream format.

Follows the WHATWG event-stream rules: a payload is split on ``\\r\\n``,
``\\r`` and ``\\n`` into ``data:`` lines (so SSE delivers every line break
as ``\\n``), and ``id``/``event`` never contain a line break.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ..message import DEFAULT_EVENT, GAP_EVENT, Gap, Message, dumps
from .base import StreamFormat

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
CONTENT_TYPE = "text/event-stream; charset=utf-8"
HEARTBEAT = b":\n\n"


def encode_event(data: str, event: str | None = None, event_id: int | None = None) -> bytes:
    """One SSE event: optional ``id:`` and ``event:`` fields, ``data:`` lines, blank line."""
    return _event_fields(data, event, event_id) + b"\n"


def _event_fields(data: str, event: str | None, event_id: int | None = None) -> bytes:
    """An event's fields without the blank line that dispatches it."""
    fields = []
    if event_id is not None:
        fields.append(f"id: {event_id}\n")
    if event is not None and event != DEFAULT_EVENT:
        fields.append(f"event: {event}\n")
    # "data: " with the space: a parser strips one leading space, so a line
    # that itself starts with a space survives.
    fields.extend(f"data: {line}\n" for line in _LINE_BREAK.split(data))
    return "".join(fields).encode("utf-8")


def payload_text(data: object) -> str:
    """A ``str`` payload goes out as its text, anything else as compact JSON."""
    return data if isinstance(data, str) else dumps(data)


def encode_message(message: Message) -> bytes:
    return encode_event(payload_text(message.data), message.event, message.id)


def encode_gap(gap: Gap) -> bytes:
    """The gap notice: ``event: gap``, JSON data, and no ``id:``.

    The retained messages follow and move the browser's ``Last-Event-ID``.
    When nothing is retained none follow, so an ``id:`` record points it at
    the channel's newest id: left at the requested id (perhaps ahead of a
    restarted channel), a later reconnect would skip messages unnoticed.
    """
    notice = encode_event(dumps(gap.to_dict()), GAP_EVENT)
    return notice if gap.first else notice + encode_position(str(gap.last))


def encode_tagged_message(message: Message) -> bytes:
    """A multiplexed message: ``event:``, ``data:`` with the whole message
    object (channel included) on one line. The ``id:`` with the subscriber's
    cursor follows it (:func:`encode_position`) and ends the event."""
    return _event_fields(message.tagged_json_bytes().decode("utf-8"), message.event)


def encode_tagged_gap(channel: str, gap: Gap) -> bytes:
    """A multiplexed gap notice: ``event: gap`` and the gap object with its channel."""
    return encode_event(dumps(gap.tagged_dict(channel)), GAP_EVENT)


def encode_retry(seconds: float) -> bytes:
    """The ``retry:`` field that opens every stream (milliseconds)."""
    return b"retry: %d\n\n" % round(seconds * 1000)


def encode_position(cursor: str) -> bytes:
    """An ``id:`` line (an id, or a multiplexed cursor) that ends an event;
    alone, the browser stores it as its last event id without firing an
    event. Sent after ``retry:``, it makes a browser that loses the
    connection before the first message resume from where it started, not
    from "now"."""
    return b"id: %s\n\n" % cursor.encode("ascii")


def requested_cursor(environ: WSGIEnvironment, params: dict[str, str]) -> tuple[str, str | None]:
    """``Last-Event-ID`` wins over ``?last_event_id=``, which wins over
    ``?since=`` (what the other transports call it): a browser reconnects
    with the original URL plus the header. Returns ``(where, value)``."""
    header = environ.get("HTTP_LAST_EVENT_ID") or None
    if header is not None:
        return "Last-Event-ID", header
    for name in ("last_event_id", "since"):
        if name in params:
            return name, params[name]
    return "since", None


def opening(retry: float, cursor: str | None) -> bytes:
    """``retry:``, then the position (none for a stream that ends at once)."""
    retry_field = encode_retry(retry)
    return retry_field if cursor is None else retry_field + encode_position(cursor)


SSE_FORMAT = StreamFormat(
    content_type=CONTENT_TYPE,
    encode_message=encode_message,
    encode_gap=encode_gap,
    encode_tagged_message=encode_tagged_message,
    encode_tagged_gap=encode_tagged_gap,
    heartbeat=HEARTBEAT,
    requested_cursor=requested_cursor,
    opening=opening,
    cursor_record=encode_position,
)
