"""Chunked HTTP streaming of newline-delimited JSON: encoder and format.

Each line is one message ``{"id", "event", "data"}`` (multiplexed: with
``"channel"``), or a gap notice ``{"event": "gap", "data": {...}}`` without
an id. An empty line is a heartbeat; readers skip empty lines.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..message import GAP_EVENT, Gap, Message, dumps
from .base import StreamFormat

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

CONTENT_TYPE = "application/x-ndjson"
HEARTBEAT = b"\n"


def encode_message(message: Message) -> bytes:
    return message.json_bytes() + b"\n"


def encode_gap(gap: Gap) -> bytes:
    return _gap_line(gap.to_dict())


def encode_tagged_message(message: Message) -> bytes:
    return message.tagged_json_bytes() + b"\n"


def encode_tagged_gap(channel: str, gap: Gap) -> bytes:
    return _gap_line(gap.tagged_dict(channel))


def _gap_line(notice: Mapping[str, object]) -> bytes:
    return (dumps({"event": GAP_EVENT, "data": notice}) + "\n").encode("utf-8")


def requested_cursor(environ: WSGIEnvironment, params: dict[str, str]) -> tuple[str, str | None]:
    return "since", params.get("since")


def opening(retry: float, cursor: str | None) -> bytes:
    """A heartbeat: readers skip it, and it gets the headers out."""
    return HEARTBEAT


NDJSON_FORMAT = StreamFormat(
    content_type=CONTENT_TYPE,
    encode_message=encode_message,
    encode_gap=encode_gap,
    encode_tagged_message=encode_tagged_message,
    encode_tagged_gap=encode_tagged_gap,
    heartbeat=HEARTBEAT,
    requested_cursor=requested_cursor,
    opening=opening,
)
