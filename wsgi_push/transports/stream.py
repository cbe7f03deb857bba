"""Chunked HTTP streaming of newline-delimited JSON: encoder and format.

Each line is one message ``{"id", "event", "data"}``, or a gap notice
``{"event": "gap", "data": {...}}`` without an id. An empty line is a
heartbeat; readers skip empty lines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..message import GAP_EVENT, Gap, Message, dumps
from ..request import parse_position
from .base import StreamFormat

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

CONTENT_TYPE = "application/x-ndjson"
HEARTBEAT = b"\n"


def encode_message(message: Message) -> bytes:
    return message.json_bytes() + b"\n"


def encode_gap(gap: Gap) -> bytes:
    return (dumps({"event": GAP_EVENT, "data": gap.to_dict()}) + "\n").encode("utf-8")


def requested_position(environ: WSGIEnvironment, params: dict[str, str]) -> int | None:
    return parse_position(params.get("since"), "since")


def opening(retry: float, position: int | None) -> bytes:
    """A heartbeat: readers skip it, and it gets the headers out."""
    return HEARTBEAT


NDJSON_FORMAT = StreamFormat(
    content_type=CONTENT_TYPE,
    encode_message=encode_message,
    encode_gap=encode_gap,
    heartbeat=HEARTBEAT,
    requested_position=requested_position,
    opening=opening,
)
