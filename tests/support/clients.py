"""Real HTTP clients for tests: a WHATWG-conformant SSE parser and readers
for the three transports over ``requests`` (real sockets)."""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import requests

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class SSEEvent:
    event: str
    data: str
    id: str | None
    comments: list[str] = field(default_factory=list)


class SSEParser:
    """Incremental event-stream parser following the WHATWG rules
    (line ends CRLF, CR or LF; one leading space stripped from values)."""

    def __init__(self) -> None:
        self._buffer = ""
        self._pending_cr = False
        self._data: list[str] = []
        self._event = ""
        self.last_event_id = ""
        self._id_seen = False
        self.retry: int | None = None
        self.comments: list[str] = []

    def feed(self, text: str) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        for char in text:
            if self._pending_cr:
                self._pending_cr = False
                if char == "\n":
                    continue
            if char in "\r\n":
                self._pending_cr = char == "\r"
                event = self._line(self._buffer)
                self._buffer = ""
                if event is not None:
                    events.append(event)
            else:
                self._buffer += char
        return events

    def _line(self, line: str) -> SSEEvent | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            self.comments.append(line[1:])
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self.last_event_id = value
            self._id_seen = True
        elif name == "retry" and value.isdigit():
            self.retry = int(value)
        return None

    def _dispatch(self) -> SSEEvent | None:
        data, event, id_seen = self._data, self._event, self._id_seen
        self._data, self._event, self._id_seen = [], "", False
        if not data:
            return None
        return SSEEvent(
            event or "message", "\n".join(data), self.last_event_id if id_seen else None
        )


def publish(base_url: str, channel: str, data: Any, event: str | None = None) -> int:
    body: dict[str, Any] = {"data": data}
    if event is not None:
        body["event"] = event
    response = requests.post(
        f"{base_url}/push/publish/{channel}", json=body, headers=AUTH, timeout=5
    )
    assert response.status_code == 201, response.text
    message_id: int = response.json()["id"]
    return message_id


def sse_events(response: requests.Response) -> Iterator[SSEEvent]:
    """Events from a streaming ``requests`` response to an SSE endpoint."""
    parser = SSEParser()
    decoder = codecs.getincrementaldecoder("utf-8")()  # a character may span chunks
    for chunk in response.iter_content(chunk_size=None):
        yield from parser.feed(decoder.decode(chunk))


def ndjson_objects(response: requests.Response) -> Iterator[dict[str, Any]]:
    """Objects from a streaming NDJSON response; empty lines (heartbeats) skipped."""
    buffer = b""
    for chunk in response.iter_content(chunk_size=None):
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if line.strip():
                yield json.loads(line)


TRANSPORTS = ("sse", "stream", "poll")


def _sse_items(base_url: str, channel: str, position: int | None) -> Iterator[dict[str, Any]]:
    headers = {} if position is None else {"Last-Event-ID": str(position)}
    with requests.get(
        f"{base_url}/push/sse/{channel}", headers=headers, stream=True, timeout=(5, 10)
    ) as response:
        assert response.status_code == 200, response.text
        for event in sse_events(response):
            item: dict[str, Any] = {"event": event.event, "data": json.loads(event.data)}
            if event.id is not None:
                item["id"] = int(event.id)
            yield item


def _stream_items(base_url: str, channel: str, position: int | None) -> Iterator[dict[str, Any]]:
    query = "" if position is None else f"?since={position}"
    with requests.get(
        f"{base_url}/push/stream/{channel}{query}", stream=True, timeout=(5, 10)
    ) as response:
        assert response.status_code == 200, response.text
        yield from ndjson_objects(response)


def _poll_items(base_url: str, channel: str, position: int | None) -> Iterator[dict[str, Any]]:
    with requests.Session() as session:
        while True:
            query = {"timeout": "2"} if position is None else {"since": position, "timeout": "2"}
            response = session.get(f"{base_url}/push/poll/{channel}", params=query, timeout=10)
            assert response.status_code == 200, response.text
            answer = response.json()
            if answer["gap"] is not None:
                yield {"event": "gap", "data": answer["gap"]}
            yield from answer["messages"]
            position = answer["last_id"]


def items(
    base_url: str, transport: str, channel: str, position: int | None
) -> Iterator[dict[str, Any]]:
    """Messages and gap notices from any transport, in one shape:
    ``{"id", "event", "data"}`` (gap notices have no ``id``). Closing the
    generator closes the connection."""
    reader = {"sse": _sse_items, "stream": _stream_items, "poll": _poll_items}[transport]
    return reader(base_url, channel, position)


def take(source: Iterator[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """The next ``count`` items, then close the source (and its connection)."""
    taken = []
    try:
        for item in source:
            taken.append(item)
            if len(taken) == count:
                break
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()
    return taken
