"""Hostile input against a live server, over real sockets.

Random and hostile paths, methods, query strings, headers and bodies
(generated with hypothesis, sent as raw bytes so nothing normalises them)
must never produce a 5xx, a hang or a lost retained message. Errors under the
prefix are ``{"error": ...}`` as ``application/json``; requests the HTTP
server itself refuses (broken request lines, oversized headers) may get the
server's own 4xx or a closed connection. Two subscribers stay connected the
whole time and must keep receiving; retained messages must stay intact.
"""

from __future__ import annotations

import http.client
import json
import socket
import string
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from tests.support.clients import AUTH, TOKEN, ndjson_objects, publish, sse_events
from tests.support.fuzz import event_names, fuzz_settings, json_values
from tests.support.raw_http import connect
from tests.support.servers import (
    ServerProcess,
    open_connections,
    pywsgi_server,
    subscriber_count,
    wait_until,
)

TIMEOUT = 5.0  # seconds any single exchange may take before it counts as a hang
MAX_BODY = 65536  # the test app's max_message_bytes
# Channels the fuzzer can't hit by chance: one holds retained messages, one
# has subscribers connected throughout.
RETAINED = "retained.k7Qz:X"
WATCHED = "watched.p3Rw:X"
STREAM_TYPES = {"sse": "text/event-stream; charset=utf-8", "stream": "application/x-ndjson"}
SERVER_LIMIT = 8000  # request and header lines above this may be refused by the server


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes | None  # None: a stream, left unread


def parsed_reply(url: str, request: bytes, method: str = "GET") -> Reply | None:
    """Send ``request`` as raw bytes on a new connection, half-close, and
    parse the answer (a stream's body left unread). None when the server
    closed without a parseable answer. Raises ``TimeoutError`` when the
    server neither answers nor closes."""
    with connect(url, TIMEOUT) as sock:
        try:
            sock.sendall(request)
            sock.shutdown(socket.SHUT_WR)
        except TimeoutError:
            raise
        except OSError:
            pass  # the server answered (e.g. 413) and closed before taking it all
        response = http.client.HTTPResponse(sock, method=method)
        try:
            response.begin()
            stream = response.status == 200 and response.getheader("Content-Type") in (
                STREAM_TYPES.values()
            )
            body = None if stream else response.read()
        except TimeoutError:
            raise
        except (http.client.HTTPException, OSError):
            return None
        return Reply(response.status, response.headers, body)


def http_request(
    method: str,
    target: str,
    headers: dict[str, bytes] | None = None,
    body: bytes | None = None,
) -> bytes:
    """A raw HTTP/1.1 request; ``headers`` values are sent byte for byte."""
    lines = [f"{method} {target} HTTP/1.1".encode("latin-1"), b"Host: 127.0.0.1"]
    lines += [name.encode() + b": " + value for name, value in (headers or {}).items()]
    return b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")


def check_reply(reply: Reply | None, well_formed: bool, method: str = "GET") -> Reply | None:
    """The invariants of every answer: no 5xx; a well-formed request gets an
    answer, and its errors are short JSON ``{"error": str}``."""
    if reply is None:
        assert not well_formed, "the server closed a well-formed request without answering"
        return None
    assert reply.status < 500, (reply.status, reply.body)
    if well_formed and reply.status >= 400:
        assert reply.headers["Content-Type"] == "application/json", reply.headers
        if method != "HEAD":
            assert reply.body is not None and len(reply.body) < 1024, reply.body
            error = json.loads(reply.body)
            assert list(error) == ["error"] and isinstance(error["error"], str)
        if reply.status == 405:
            assert reply.headers["Allow"]
    return reply


class Watcher:
    """A subscriber kept open in a thread; records ``(id, data)`` of each message."""

    def __init__(self, url: str, transport: str) -> None:
        self.transport = transport
        self.response = requests.get(
            f"{url}/push/{transport}/{WATCHED}", stream=True, timeout=(TIMEOUT, 30)
        )
        assert self.response.status_code == 200
        self.received: list[tuple[int, Any]] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        messages: Iterator[tuple[int, Any]]
        if self.transport == "sse":
            messages = ((int(e.id or 0), e.data) for e in sse_events(self.response))
        else:
            messages = ((o["id"], o["data"]) for o in ndjson_objects(self.response))
        for message in messages:
            self.received.append(message)
            if message[1] == "end":
                return

    def close(self) -> None:
        self.thread.join(TIMEOUT)
        self.response.close()


class Bystanders:
    """Retained messages and open subscribers that hostile traffic must not disturb."""

    def __init__(self, server: ServerProcess) -> None:
        self.url = url = server.url
        self.server = server
        self.retained = [
            {"id": publish(url, RETAINED, data), "event": "message", "data": data}
            for data in ["plain", {"nested": [1, "two\r\n"]}, "line\rbreaks\n"]
        ]
        self.watchers = [Watcher(url, "sse"), Watcher(url, "stream")]
        wait_until(self._subscribed, TIMEOUT, "the watchers to subscribe")
        self.probes: list[tuple[int, Any]] = []
        self.crashes_seen = 0

    def _subscribed(self) -> bool:
        return subscriber_count(self.server, WATCHED) == len(self.watchers)

    def only_watchers_connected(self) -> bool:
        """Whether the watchers are the server's only open connections."""
        return open_connections(self.server) == len(self.watchers)

    def check_undisturbed(self) -> None:
        """A message published now reaches every watcher, after exactly the
        earlier probes; retained messages are all there; nothing crashed."""
        data = f"probe-{len(self.probes)}"
        self.probes.append((publish(self.url, WATCHED, data), data))
        for watcher in self.watchers:
            wait_until(lambda w=watcher: len(w.received) >= len(self.probes), TIMEOUT, "the probe")
            assert watcher.received == self.probes
        answer = requests.get(
            f"{self.url}/push/poll/{RETAINED}", params={"since": 0}, timeout=TIMEOUT
        ).json()
        assert answer["messages"] == self.retained
        crashes = self.server.tracebacks(through="/wsgi_push/")
        new_crashes, self.crashes_seen = crashes[self.crashes_seen :], len(crashes)
        assert new_crashes == []

    def close(self) -> None:
        publish(self.url, WATCHED, "end")
        for watcher in self.watchers:
            watcher.close()


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    """The test app with short long polls, so fuzzed polls answer quickly."""
    with pywsgi_server(PUSH_TEST_HEARTBEAT="0.5", PUSH_TEST_POLL_TIMEOUT="0.01") as process:
        yield process


@pytest.fixture(scope="module")
def bystanders(server: ServerProcess) -> Iterator[Bystanders]:
    watched = Bystanders(server)
    yield watched
    watched.close()


@pytest.fixture(autouse=True)
def undisturbed(bystanders: Bystanders) -> Iterator[None]:
    """After each test (all of its examples), the bystanders must be intact."""
    yield
    bystanders.check_undisturbed()


# Strategies --------------------------------------------------------------

channel_names = st.text(string.ascii_letters + string.digits + "_.:-", min_size=1, max_size=128)
hostile_segments = st.sampled_from(
    ["", ".", "..", "/", "a/b", "x" * 129, "%00", "a%00b", "%2F", "%2e%2e", "%2E", "%"]
    + ["%z", "%zz", "%f", "%ff%fe", "%%41", "%C3%A9", "caf%C3%A9", "%E2%80%A8", "a;b", "a?b"]
    + ["%0D%0A", "%0A", "x" * 5000, "../push/sse/x", "sse/x"]
)
# Printable ASCII but space: syntactically a request target, semantically garbage.
target_chars = "".join(chr(code) for code in range(0x21, 0x7F))
channel_segments = st.one_of(
    channel_names,
    hostile_segments,
    st.text().map(lambda text: quote(text, safe="")),
    st.text(target_chars, max_size=40),
)
routes = st.sampled_from(["sse", "stream", "poll", "publish", "client.js", "", "nope", "SSE"])
methods = st.one_of(
    st.sampled_from(["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"]),
    st.text(string.ascii_uppercase, min_size=1, max_size=12),
)
numbers = st.one_of(
    st.integers(-5, 2**70).map(str),
    st.sampled_from(["", " ", "-0", "+1", "0x10", "1e3", "1.5", "\u0663", "\u00b2", " 7 "])
    | st.sampled_from(["7\x00", "NaN", "inf", "-inf", "1e400", "9" * 18, "9" * 19, "0" * 40]),
    st.text(max_size=20),
)
query_names = st.sampled_from(["since", "last_event_id", "timeout"]) | st.text(max_size=8)
query_strings = st.one_of(
    st.lists(st.tuples(query_names, numbers), max_size=40).map(urlencode),
    st.text(target_chars, max_size=300),
)
header_texts = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=40)
last_event_ids = st.one_of(
    numbers.map(lambda value: value.encode("utf-8")),
    header_texts.map(lambda value: value.encode("latin-1")),
    st.integers(1, 20_000).map(lambda size: b"9" * size),
)
authorizations = st.sampled_from(
    [f"Bearer {TOKEN}", "Bearer wrong", "Bearer", "Basic dGVzdA==", "", f"bearer  {TOKEN} "]
    + [f"Bearer {TOKEN}x", f"Bearer {TOKEN}\u00e9"]
).map(lambda value: value.encode("latin-1"))


def nested(depth: int) -> bytes:
    return b'{"data":' + b"[" * depth + b"]" * depth + b"}"


publish_documents = st.fixed_dictionaries(
    {"data": json_values}, optional={"event": event_names}
).map(lambda document: json.dumps(document).encode())
raw_bodies = st.sampled_from(
    [b'{"data": NaN}', b'{"data": Infinity}', b'{"data": "\\ud800"}', b'{"data": 1']
    + [b'{"data": ' + b"1" * 5000 + b"}", b'\xef\xbb\xbf{"data": 1}', b"", b"null"]
    + [b'{"data": 1, "event": "gap"}', b'{"data": 1, "event": 5}', b'{"data": 1, "x": 2}']
    + [b'{"event": "x"}', b'{"data": 1, "event": "a\\nid: 5"}', b"[1]", b'"data"']
    + [nested(depth) for depth in (127, 128, 129, 900, 965, 990, 5000, 30_000)]
    + [b'{"data":"' + b"x" * size + b'"}' for size in (MAX_BODY - 12, MAX_BODY - 11, 70_000)]
)
bodies = st.one_of(
    publish_documents,
    json_values.map(lambda value: json.dumps(value).encode()),
    raw_bodies,
    st.binary(max_size=300),
)
framings = st.sampled_from(["exact", "exact", "exact", "chunked", "absent", "short", "long"])


def framed(body: bytes, framing: str) -> tuple[dict[str, bytes], bytes]:
    """Headers and bytes that send ``body`` with the given (possibly wrong) framing."""
    if framing == "chunked":
        chunks = [body[i : i + 4096] for i in range(0, len(body), 4096)] + [b""]
        return {"Transfer-Encoding": b"chunked"}, b"".join(
            b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks
        )
    if framing == "absent":
        return {}, body
    declared = {"exact": len(body), "short": len(body) // 2, "long": len(body) + 10}[framing]
    return {"Content-Length": str(declared).encode()}, body


# Tests -------------------------------------------------------------------


@fuzz_settings(600)
@given(method=methods, route=routes, segment=channel_segments, query=st.none() | query_strings)
def test_hostile_paths_and_methods_get_json_errors(
    server: ServerProcess,
    bystanders: Bystanders,
    method: str,
    route: str,
    segment: str,
    query: str | None,
) -> None:
    target = f"/push/{route}/{segment}" + ("" if query is None else f"?{query}")
    well_formed = len(target) < SERVER_LIMIT
    reply = parsed_reply(server.url, http_request(method, target), method)
    check_reply(reply, well_formed, method)
    if reply is not None and reply.status == 200 and route in STREAM_TYPES:
        assert reply.headers["Content-Type"] == STREAM_TYPES[route]


@fuzz_settings(600)
@given(
    route=st.sampled_from(["sse", "stream", "poll"]),
    channel=st.sampled_from([RETAINED, "fuzz-q", "fuzz-empty"]),
    query=query_strings,
    last_event_id=st.none() | last_event_ids,
)
def test_hostile_queries_and_resume_headers_never_fail(
    server: ServerProcess,
    bystanders: Bystanders,
    route: str,
    channel: str,
    query: str,
    last_event_id: bytes | None,
) -> None:
    headers = {} if last_event_id is None else {"Last-Event-ID": last_event_id}
    target = f"/push/{route}/{channel}?{query}"
    well_formed = len(target) < SERVER_LIMIT and len(last_event_id or b"") < SERVER_LIMIT
    reply = check_reply(parsed_reply(server.url, http_request("GET", target, headers)), well_formed)
    if reply is not None and reply.status == 200 and route == "poll":
        answer = json.loads(reply.body or b"")
        assert answer["channel"] == channel and answer.keys() == {
            "channel", "messages", "last_id", "gap"
        }  # fmt: skip


@fuzz_settings(800)
@given(
    channel=st.sampled_from(["fuzz-a", "fuzz.b", "fuzz:c"]) | channel_segments,
    authorization=st.one_of(st.just(f"Bearer {TOKEN}".encode()), st.none(), authorizations),
    body=bodies,
    framing=framings,
)
def test_hostile_publish_bodies_never_fail_or_lose_a_message(
    server: ServerProcess,
    bystanders: Bystanders,
    channel: str,
    authorization: bytes | None,
    body: bytes,
    framing: str,
) -> None:
    headers, payload = framed(body, framing)
    if authorization is not None:
        headers["Authorization"] = authorization
    request = http_request("POST", f"/push/publish/{channel}", headers, payload)
    # Bytes beyond the framed body are a garbage next request, and a server
    # that closes with unread bytes resets the connection, which may discard
    # its answer; so an answer is only owed when the whole body is read.
    read_whole = framing in ("exact", "chunked", "long") and len(body) <= MAX_BODY
    reply = check_reply(
        parsed_reply(server.url, request, "POST"), read_whole and len(channel) < SERVER_LIMIT
    )
    if reply is None or reply.status != 201:
        return
    # Published: the message must be retained exactly as the server received it.
    document = json.loads(body[: len(body) // 2] if framing == "short" else body)
    message_id = json.loads(reply.body or b"")["id"]
    answer = requests.get(
        f"{server.url}/push/poll/{channel}",
        params={"since": message_id - 1, "timeout": 0},
        timeout=TIMEOUT,
    ).json()
    assert answer["messages"][0] == {
        "id": message_id,
        "event": document.get("event") or "message",
        "data": document["data"],
    }


malformed_requests = st.one_of(
    st.binary(max_size=400),
    st.sampled_from(
        [b"GET /push/sse/x HTTP/9.9", b"GET /push/poll/x HTTP/1", b"GET /push/poll/x"]
        + [b"GET  /push/poll/x  HTTP/1.1", b"GET /push/poll/\x00 HTTP/1.1", b"\r\n\r\n"]
        + [b"GET /push/poll/\xff\x7f HTTP/1.1", b"G\x00T /push/poll/x HTTP/1.1"]
        + [b"GET /push/poll/" + b"x" * 9000 + b" HTTP/1.1"]
    ).map(lambda line: line + b"\r\nHost: a\r\n\r\n"),
    st.sampled_from(
        [b"NoColonHere", b"Bad Name: x", b" folded: continuation", b"X: \x00\x01"]
        + [b"Content-Length: 5\r\nContent-Length: 7", b"Content-Length: \xb2"]
        + [b"Content-Length: -1", b"Content-Length: abc", b"Transfer-Encoding: gzip"]
        + [b"Transfer-Encoding: chunked\r\nContent-Length: 3", b"X-Many: 1\r\n" * 200]
        + [b"Last-Event-ID: " + b"9" * 70_000, b"Authorization: Bearer " + b"t" * 70_000]
    ).map(
        lambda header: (
            b"POST /push/publish/fuzz-m HTTP/1.1\r\nHost: a\r\n"
            + f"Authorization: Bearer {TOKEN}\r\n".encode()
            + header
            + b'\r\n\r\n{"data": 1}'
        )
    ),
)


@fuzz_settings(400)
@given(request=malformed_requests)
def test_malformed_http_gets_an_answer_or_a_close_never_a_5xx(
    server: ServerProcess, bystanders: Bystanders, request: bytes
) -> None:
    check_reply(parsed_reply(server.url, request), well_formed=False)


@pytest.mark.parametrize("depth", [1, 64, 127, 128, 129, 500, 900, 965, 990, 30_000])
def test_deep_json_publishes_or_is_refused_and_never_poisons_a_channel(
    server: ServerProcess, bystanders: Bystanders, depth: int
) -> None:
    """Data nested deeper than the server can encode is refused at publish;
    whatever is accepted can be read back on every transport."""
    channel = f"deep-{depth}"
    response = requests.post(
        f"{server.url}/push/publish/{channel}", data=nested(depth), headers=AUTH, timeout=TIMEOUT
    )
    assert response.status_code in (201, 400), response.text
    assert response.headers["Content-Type"] == "application/json"
    if response.status_code == 400:
        return
    data = json.loads(nested(depth))["data"]
    answer = requests.get(f"{server.url}/push/poll/{channel}", params={"since": 0}, timeout=TIMEOUT)
    assert answer.status_code == 200 and answer.json()["messages"][0]["data"] == data
    for route in STREAM_TYPES:
        url = f"{server.url}/push/{route}/{channel}?since=0&last_event_id=0"
        with requests.get(url, stream=True, timeout=TIMEOUT) as stream:
            if route == "sse":
                assert json.loads(next(sse_events(stream)).data) == data
            else:
                assert next(ndjson_objects(stream))["data"] == data


def test_no_connection_leaks_after_hostile_traffic(bystanders: Bystanders) -> None:
    """Every stream the fuzzer opened and dropped is closed on the server."""
    wait_until(bystanders.only_watchers_connected, 10, "dropped streams to close")
