"""Chunked HTTP streaming of newline-delimited JSON: encoder and format.

Each line is one message ``{"id", "event", "data"}``, or a gap notice
``{"event": "gap", "data": {...}}`` without an id. An empty line is a
heartbeat; readers skip empty lines.
"""

from __future__ import annotations

from ..message import GAP_EVENT, Gap, Message, dumps
from .base import StreamFormat

CONTENT_TYPE = "application/x-ndjson"
HEARTBEAT = b"\n"


def encode_message(message: Message) -> bytes:
    return message.json_bytes() + b"\n"


def encode_gap(gap: Gap) -> bytes:
    return (dumps({"event": GAP_EVENT, "data": gap.to_dict()}) + "\n").encode("utf-8")


NDJSON_FORMAT = StreamFormat(
    content_type=CONTENT_TYPE,
    encode_message=encode_message,
    encode_gap=encode_gap,
    heartbeat=HEARTBEAT,
)
