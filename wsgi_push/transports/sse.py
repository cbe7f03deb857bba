"""Server-Sent Events: the encoder (pure) and the stream format.

Follows the WHATWG event-stream rules: a payload is split on ``\\r\\n``,
``\\r`` and ``\\n`` into ``data:`` lines (so SSE delivers every line break
as ``\\n``), and ``id``/``event`` never contain a line break.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ..message import DEFAULT_EVENT, GAP_EVENT, Gap, Message, dumps
from ..request import parse_position
from .base import StreamFormat

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

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
    """The gap notice: ``event: gap``, JSON data, and no ``id:``.

    The retained messages follow and move the browser's ``Last-Event-ID``.
    When nothing is retained none follow, so an ``id:`` record points it at
    the channel's newest id: left at the requested id (perhaps ahead of a
    restarted channel), a later reconnect would skip messages unnoticed.
    """
    notice = encode_event(dumps(gap.to_dict()), GAP_EVENT)
    return notice if gap.first else notice + encode_position(gap.last)


def encode_retry(seconds: float) -> bytes:
    """The ``retry:`` field that opens every stream (milliseconds)."""
    return b"retry: %d\n\n" % round(seconds * 1000)


def encode_position(position: int) -> bytes:
    """An ``id:`` with no data: the browser stores it as its last event id
    without firing an event. Sent after ``retry:``, it makes a browser that
    loses the connection before the first message resume from where it
    started, not from "now"."""
    return b"id: %d\n\n" % position


def requested_position(environ: WSGIEnvironment, params: dict[str, str]) -> int | None:
    """``Last-Event-ID`` wins over ``?last_event_id=``, then ``?since=`` (the
    other transports' name): a browser reconnects with the original URL plus
    the header."""
    header = environ.get("HTTP_LAST_EVENT_ID") or None
    if header is not None:
        return parse_position(header, "Last-Event-ID")
    if "last_event_id" in params:
        return parse_position(params["last_event_id"], "last_event_id")
    return parse_position(params.get("since"), "since")


def opening(retry: float, position: int | None) -> bytes:
    """``retry:``, then the position (none for a stream that ends at once)."""
    retry_field = encode_retry(retry)
    return retry_field if position is None else retry_field + encode_position(position)


SSE_FORMAT = StreamFormat(
    content_type=CONTENT_TYPE,
    encode_message=encode_message,
    encode_gap=encode_gap,
    heartbeat=HEARTBEAT,
    requested_position=requested_position,
    opening=opening,
)
