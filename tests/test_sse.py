"""Server-Sent Events: the pure encoder byte for byte, and the live endpoint."""

from __future__ import annotations

import time
from itertools import pairwise

import requests

from tests.support.clients import SSEParser, publish, sse_events
from tests.support.servers import ServerProcess
from wsgi_push import Gap, Message
from wsgi_push.transports.sse import (
    HEARTBEAT,
    encode_event,
    encode_gap,
    encode_message,
    encode_position,
    encode_retry,
)


def test_encode_message_with_default_event_omits_event_field() -> None:
    assert encode_message(Message("c", 7, "message", {"a": 1})) == b'id: 7\ndata: {"a":1}\n\n'


def test_encode_message_with_named_event_and_text_payload() -> None:
    message = Message("c", 8, "headline", "hello")
    assert encode_message(message) == b"id: 8\nevent: headline\ndata: hello\n\n"


def test_every_line_break_starts_a_data_line() -> None:
    assert encode_event("a\r\nb\rc\nd") == b"data: a\ndata: b\ndata: c\ndata: d\n\n"
    assert encode_event("trailing\n") == b"data: trailing\ndata: \n\n"
    assert encode_event("") == b"data: \n\n"


def test_leading_space_survives_a_parser() -> None:
    encoded = encode_event("  two spaces")
    assert encoded == b"data:   two spaces\n\n"
    assert SSEParser().feed(encoded.decode())[0].data == "  two spaces"


def test_gap_notice_has_no_id() -> None:
    assert encode_gap(Gap(3, 5, 9)) == (b'event: gap\ndata: {"requested":3,"first":5,"last":9}\n\n')


def test_gap_with_nothing_retained_moves_the_position_to_the_newest_id() -> None:
    """No message follows to move the browser's last event id; left at the
    requested id (ahead of a restarted channel) a reconnect would skip."""
    encoded = encode_gap(Gap(9, 0, 4))
    assert encoded == b'event: gap\ndata: {"requested":9,"first":0,"last":4}\n\nid: 4\n\n'
    parser = SSEParser()
    assert [event.event for event in parser.feed(encoded.decode())] == ["gap"]
    assert parser.last_event_id == "4"


def test_retry_position_and_heartbeat() -> None:
    assert encode_retry(2.5) == b"retry: 2500\n\n"
    parser = SSEParser()
    assert parser.feed(encode_position("41").decode()) == []  # no event fires...
    assert parser.last_event_id == "41"  # ...but the browser remembers the position
    assert HEARTBEAT.startswith(b":") and HEARTBEAT.strip(b"\n")


def test_unicode_payload_is_utf8() -> None:
    assert encode_event("caf\u00e9 \u2603") == "data: caf\u00e9 \u2603\n\n".encode()


def test_headers_and_retry_first(server: ServerProcess) -> None:
    with requests.get(f"{server.url}/push/sse/headers", stream=True, timeout=5) as response:
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "text/event-stream; charset=utf-8"
        assert response.headers["Cache-Control"] == "no-cache"
        assert response.headers["X-Accel-Buffering"] == "no"
        assert response.headers["Transfer-Encoding"] == "chunked"
        first = next(response.iter_content(chunk_size=None))
        assert first.startswith(b"retry: ")


def test_live_event_fields_and_multiline_text(server: ServerProcess) -> None:
    with requests.get(f"{server.url}/push/sse/fields", stream=True, timeout=5) as response:
        events = sse_events(response)
        first_id = publish(server.url, "fields", "line one\r\nline two", event="note")
        event = next(events)
    assert (event.id, event.event, event.data) == (str(first_id), "note", "line one\nline two")


def test_last_event_id_header_wins_over_query(server: ServerProcess) -> None:
    for n in range(5):
        publish(server.url, "header-wins", n)
    url = f"{server.url}/push/sse/header-wins?last_event_id=1"
    with requests.get(url, headers={"Last-Event-ID": "3"}, stream=True, timeout=5) as response:
        events = sse_events(response)
        assert [next(events).id for _ in range(2)] == ["4", "5"]
    with requests.get(url, stream=True, timeout=5) as response:
        events = sse_events(response)
        assert next(events).id == "2"


def test_since_is_read_after_the_header_and_last_event_id(server: ServerProcess) -> None:
    """``since`` (the other transports' name) resumes SSE too, last in line."""
    cases = [("?since=2", {}, "3"), ("?since=2&last_event_id=1", {}, "2")]
    cases.append(("?since=1", {"Last-Event-ID": "3"}, "4"))
    for number, (query, headers, first_id) in enumerate(cases):
        channel = f"since-sse-{number}"
        for n in range(5):
            publish(server.url, channel, n)
        url = f"{server.url}/push/sse/{channel}{query}"
        with requests.get(url, headers=headers, stream=True, timeout=5) as response:
            # One more after subscribing: a position ignored shows as id 6, not a hang.
            publish(server.url, channel, "later")
            assert next(sse_events(response)).id == first_id, query
    base = f"{server.url}/push/sse/since-sse-0"
    refused = requests.get(f"{base}?since=x", timeout=5)
    assert refused.status_code == 400 and refused.json() == {
        "error": "since must be a non-negative integer"
    }


def test_heartbeat_comments_while_idle(server: ServerProcess) -> None:
    """The test server's heartbeat is 0.5 s: comments arrive about that often."""
    parser = SSEParser()
    arrivals = []
    with requests.get(f"{server.url}/push/sse/idle", stream=True, timeout=5) as response:
        for chunk in response.iter_content(chunk_size=None):
            before = len(parser.comments)
            parser.feed(chunk.decode())
            if len(parser.comments) > before:
                arrivals.append(time.monotonic())
            if len(arrivals) == 4:
                break
    gaps = [later - earlier for earlier, later in pairwise(arrivals)]
    assert all(0.35 < gap < 1.5 for gap in gaps), gaps


def test_heartbeats_written_for_a_parked_stream_interleave_whole_with_messages(
    server: ServerProcess,
) -> None:
    """Under the package's server an idle stream's heartbeats are written for
    it while its greenlet stays parked: still exactly ``:\n\n`` each, and a
    message published between two of them arrives whole, in its place."""
    with requests.get(f"{server.url}/push/sse/parked", stream=True, timeout=5) as response:
        chunks = response.iter_content(chunk_size=None)
        assert next(chunks) == b"retry: 2000\n\nid: 0\n\n"
        assert [next(chunks) for _ in range(2)] == [HEARTBEAT] * 2
        message_id = publish(server.url, "parked", {"n": 1})
        assert next(chunks) == f'id: {message_id}\ndata: {{"n":1}}\n\n'.encode()
        assert [next(chunks) for _ in range(2)] == [HEARTBEAT] * 2


def test_stream_opens_with_the_resume_position(server: ServerProcess) -> None:
    """A browser that connected "from now" and loses the connection before the
    first message reconnects with Last-Event-ID = where it started."""
    for n in range(3):
        publish(server.url, "opening", n)
    with requests.get(f"{server.url}/push/sse/opening", stream=True, timeout=5) as response:
        first = next(response.iter_content(chunk_size=None))
    assert first == b"retry: 2000\n\nid: 3\n\n"
