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
        self._decoder = codecs.getincrementaldecoder("utf-8")()

    def feed_bytes(self, chunk: bytes, final: bool = False) -> list[SSEEvent]:
        """:meth:`feed` for bytes off the wire, where a character may span
        chunks; ``final`` once the stream has ended."""
        return self.feed(self._decoder.decode(chunk, final))

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


class NDJSONParser:
    """Incremental NDJSON parser: one JSON value a line; empty lines
    (heartbeats) skipped."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[Any]:
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        return [json.loads(line) for line in lines if line.strip()]


def sse_events(response: requests.Response) -> Iterator[SSEEvent]:
    """Events from a streaming ``requests`` response to an SSE endpoint."""
    parser = SSEParser()
    for chunk in response.iter_content(chunk_size=None):
        yield from parser.feed_bytes(chunk)


def ndjson_objects(response: requests.Response) -> Iterator[dict[str, Any]]:
    """Objects from a streaming NDJSON response; empty lines (heartbeats) skipped."""
    parser = NDJSONParser()
    for chunk in response.iter_content(chunk_size=None):
        yield from parser.feed(chunk)


TRANSPORTS = ("sse", "stream", "poll")


def sse_item(event: SSEEvent) -> dict[str, Any]:
    """An SSE event in the shape of :func:`items` (no ``id`` for a gap notice)."""
    item: dict[str, Any] = {"event": event.event, "data": json.loads(event.data)}
    if event.id is not None:
        item["id"] = int(event.id)
    return item


class ItemParser:
    """A streaming transport's body (``sse`` or ``stream``), fed chunk by
    chunk as it arrives, turned into items in the shape of :func:`items`."""

    def __init__(self, transport: str) -> None:
        if transport not in ("sse", "stream"):
            raise ValueError(f"not a streaming transport: {transport!r}")
        self._sse = SSEParser() if transport == "sse" else None
        self._ndjson = NDJSONParser()

    def feed(self, chunk: bytes) -> list[dict[str, Any]]:
        if self._sse is not None:
            return [sse_item(event) for event in self._sse.feed_bytes(chunk)]
        return self._ndjson.feed(chunk)


def stream_request(
    transport: str, channel: str, position: int | None
) -> tuple[str, dict[str, str]]:
    """Path and headers subscribing to ``channel`` over a streaming transport,
    resuming after ``position`` (None: from now)."""
    if transport == "sse":
        return f"/push/sse/{channel}", {} if position is None else {"Last-Event-ID": str(position)}
    query = "" if position is None else f"?since={position}"
    return f"/push/stream/{channel}{query}", {}


def poll_answer_items(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """A long-poll answer in the shape of :func:`items`: its gap notice, if
    any, then its messages."""
    gap = [] if answer["gap"] is None else [{"event": "gap", "data": answer["gap"]}]
    messages: list[dict[str, Any]] = answer["messages"]
    return gap + messages


def _streamed_items(
    base_url: str, transport: str, channel: str, position: int | None
) -> Iterator[dict[str, Any]]:
    parser = ItemParser(transport)
    path, headers = stream_request(transport, channel, position)
    with requests.get(base_url + path, headers=headers, stream=True, timeout=(5, 10)) as response:
        assert response.status_code == 200, response.text
        for chunk in response.iter_content(chunk_size=None):
            yield from parser.feed(chunk)


def _poll_items(base_url: str, channel: str, position: int | None) -> Iterator[dict[str, Any]]:
    with requests.Session() as session:
        while True:
            query = {"timeout": "2"} if position is None else {"since": position, "timeout": "2"}
            response = session.get(f"{base_url}/push/poll/{channel}", params=query, timeout=10)
            assert response.status_code == 200, response.text
            answer = response.json()
            yield from poll_answer_items(answer)
            position = answer["last_id"]


def items(
    base_url: str, transport: str, channel: str, position: int | None
) -> Iterator[dict[str, Any]]:
    """Messages and gap notices from any transport, in one shape:
    ``{"id", "event", "data"}`` (gap notices have no ``id``). Closing the
    generator closes the connection."""
    if transport == "poll":
        return _poll_items(base_url, channel, position)
    return _streamed_items(base_url, transport, channel, position)


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


def item_ids(taken: list[dict[str, Any]]) -> list[int]:
    """The ids of items (in the shape of :func:`items`), in order."""
    return [item["id"] for item in taken]


class Cursor:
    """A multiplexed subscription's resume position, kept the way a client
    must: SSE takes the ``id:`` of each event; NDJSON moves each channel's
    entry past its messages (and, for a gap with nothing retained, to the
    channel's last id); poll takes the answer's ``cursor``."""

    def __init__(self, channels: list[str], start: str) -> None:
        self.channels = channels
        self.value = start

    def advance(self, item: dict[str, Any]) -> None:
        entries = self.value.split(",")
        if len(entries) == 1:
            entries *= len(self.channels)
        if item.get("event") == "gap":
            notice = item["data"]
            if notice["first"] == 0:
                entries[self.channels.index(notice["channel"])] = str(notice["last"])
        else:
            entries[self.channels.index(item["channel"])] = str(item["id"])
        self.value = ",".join(entries)


def multiplexed_items(
    base_url: str, transport: str, channels: list[str], cursor: Cursor
) -> Iterator[dict[str, Any]]:
    """Messages (each with ``channel``) and gap notices of a multiplexed
    subscription, in one shape on every transport, moving ``cursor`` as they
    arrive. Closing the generator closes the connection."""
    names = ",".join(channels)
    if transport == "poll":
        with requests.Session() as session:
            while True:
                response = session.get(
                    f"{base_url}/push/poll/{names}",
                    params={"since": cursor.value, "timeout": "2"},
                    timeout=10,
                )
                assert response.status_code == 200, response.text
                answer = response.json()
                assert answer["channels"] == channels
                for item in [{"event": "gap", "data": gap} for gap in answer["gaps"]] + answer[
                    "messages"
                ]:
                    cursor.advance(item)  # a caller may stop halfway through an answer
                    yield item
                cursor.value = answer["cursor"]
        return
    headers = {"Last-Event-ID": cursor.value} if transport == "sse" else {}
    query = "" if transport == "sse" else f"?since={cursor.value}"
    url = f"{base_url}/push/{transport}/{names}{query}"
    with requests.get(url, headers=headers, stream=True, timeout=(5, 10)) as response:
        assert response.status_code == 200, response.text
        if transport == "stream":
            for item in ndjson_objects(response):
                cursor.advance(item)
                yield item
            return
        parser = SSEParser()
        for chunk in response.iter_content(chunk_size=None):
            for event in parser.feed_bytes(chunk):
                data = json.loads(event.data)
                if event.event == "gap":
                    yield {"event": "gap", "data": data}
                    continue
                assert event.id is not None, "a multiplexed message carries the cursor"
                cursor.value = event.id
                yield data
            if parser.last_event_id:
                cursor.value = parser.last_event_id  # e.g. after a gap with nothing retained
