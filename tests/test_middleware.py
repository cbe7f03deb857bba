"""PushMiddleware over real sockets: the wrapped app untouched, and every bad
input answered with the contract's JSON error while nothing else is disturbed."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator

import pytest
import requests
from werkzeug.test import Client

from tests.support.clients import AUTH, item_ids, publish, sse_events
from tests.support.raw_http import connect, raw_response, send
from tests.support.servers import ServerProcess, pywsgi_server
from wsgi_push import BrokerUnavailable, MemoryBroker, PushMiddleware


@pytest.fixture(scope="module")
def bare_server() -> Iterator[ServerProcess]:
    """The inner app alone, to compare against."""
    with pywsgi_server("tests.support.apps:inner_app") as process:
        yield process


def without_date(response: bytes) -> bytes:
    return b"\r\n".join(line for line in response.split(b"\r\n") if not line.startswith(b"Date:"))


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /app/stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"POST /app/echo?q=1&x=%2F HTTP/1.1\r\nHost: x\r\nX-Custom: kept\r\n"
        b"Content-Length: 5\r\nConnection: close\r\n\r\nhello",
        b"GET /pushy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /nowhere HTTP/1.0\r\n\r\n",
    ],
)
def test_wrapped_app_responses_are_identical(
    server: ServerProcess, bare_server: ServerProcess, request_bytes: bytes
) -> None:
    wrapped = without_date(raw_response(server.url, request_bytes))
    bare = without_date(raw_response(bare_server.url, request_bytes))
    assert wrapped == bare
    assert wrapped.startswith(b"HTTP/1.")


def test_wrapped_streaming_body_is_closed_once(server: ServerProcess) -> None:
    before = requests.get(f"{server.url}/app/closes", timeout=5).json()["count"]
    response = requests.get(f"{server.url}/app/stream", timeout=5)
    assert response.text == "one\ntwo\nthree\n" and response.headers["X-Inner"] == "yes"
    after = requests.get(f"{server.url}/app/closes", timeout=5).json()["count"]
    # /app/closes itself is a list (no close); only the stream counts.
    assert after - before == 1


BAD_CHANNELS = ["", "x" * 129, "a/b", ".", "..", "caf%C3%A9", "a%00b", "%2E%2E"]
BEARER = AUTH["Authorization"]


@pytest.mark.parametrize("transport", ["sse", "stream", "poll"])
@pytest.mark.parametrize("channel", BAD_CHANNELS)
def test_bad_channel_names_answer_400(server: ServerProcess, transport: str, channel: str) -> None:
    status, headers, body = send(server.url, "GET", f"/push/{transport}/{channel}")
    assert status == 400 and headers["Content-Type"] == "application/json"
    assert "invalid channel name" in json.loads(body)["error"]


@pytest.mark.parametrize("channel", BAD_CHANNELS)
def test_bad_channel_names_refused_for_publishing(server: ServerProcess, channel: str) -> None:
    status, _, body = send(
        server.url, "POST", f"/push/publish/{channel}", b'{"data":1}', Authorization=BEARER
    )
    assert status == 400 and "channel" in json.loads(body)["error"]


@pytest.mark.parametrize(
    ("path", "headers", "mentions"),
    [
        ("/push/poll/c?since=abc", {}, "since"),
        ("/push/poll/c?since=-1", {}, "since"),
        ("/push/poll/c?since=1.5", {}, "since"),
        ("/push/poll/c?since=", {}, "since"),
        ("/push/stream/c?since=x", {}, "since"),
        ("/push/sse/c?last_event_id=-2", {}, "last_event_id"),
        ("/push/sse/c", {"Last-Event-ID": "abc"}, "Last-Event-ID"),
        ("/push/sse/c", {"Last-Event-ID": "-1"}, "Last-Event-ID"),
        ("/push/poll/c?timeout=-1", {}, "timeout"),
        ("/push/poll/c?timeout=nan", {}, "timeout"),
        ("/push/poll/c?timeout=inf", {}, "timeout"),
        ("/push/poll/c?timeout=soon", {}, "timeout"),
        ("/push/poll/c?" + "&".join(f"p{n}=1" for n in range(40)), {}, "query"),
    ],
)
def test_bad_parameters_answer_400(
    server: ServerProcess, path: str, headers: dict[str, str], mentions: str
) -> None:
    status, response_headers, body = send(server.url, "GET", path, **headers)
    assert status == 400 and response_headers["Content-Type"] == "application/json"
    assert mentions in json.loads(body)["error"]


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b"not json", {"Authorization": BEARER}, 400),
        (b'{"event":"x"}', {"Authorization": BEARER}, 400),
        (b"[1,2]", {"Authorization": BEARER}, 400),
        (b'{"data":1,"evnet":"typo"}', {"Authorization": BEARER}, 400),
        (b'{"data":1,"event":"gap"}', {"Authorization": BEARER}, 400),
        (b'{"data":1,"event":"a\\nb"}', {"Authorization": BEARER}, 400),
        (b'{"data":1,"event":7}', {"Authorization": BEARER}, 400),
        (b"\xff\xfe", {"Authorization": BEARER}, 400),
        (b'{"data":1}', {}, 401),
        (b'{"data":1}', {"Authorization": "Basic abc"}, 401),
        (b'{"data":1}', {"Authorization": "Bearer wrong"}, 403),
    ],
)
def test_bad_publish_requests(
    server: ServerProcess, body: bytes, headers: dict[str, str], status: int
) -> None:
    got, response_headers, answer = send(server.url, "POST", "/push/publish/c", body, **headers)
    assert got == status and response_headers["Content-Type"] == "application/json"
    assert json.loads(answer)["error"]
    if status == 401:
        assert response_headers["WWW-Authenticate"].startswith("Bearer")


def test_oversized_body_is_refused_from_content_length_before_reading(
    server: ServerProcess,
) -> None:
    """Declare 10 MB and send nothing: the 413 comes back without the body."""
    with connect(server.url) as sock:
        sock.sendall(
            b"POST /push/publish/c HTTP/1.1\r\nHost: x\r\nAuthorization: "
            + BEARER.encode()
            + b"\r\nContent-Length: 10000000\r\n\r\n"
        )
        head = sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 413")


@pytest.mark.parametrize("declared", [b"21 ", b"21\t", b" 21  "])
def test_content_length_with_optional_whitespace_is_read(
    server: ServerProcess, declared: bytes
) -> None:
    """RFC 9110 allows whitespace around a field value."""
    body = b'{"data":"whitespace"}'
    assert len(body) == 21
    response = raw_response(
        server.url,
        b"POST /push/publish/ows HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: "
        + BEARER.encode()
        + b"\r\nContent-Length:"
        + declared
        + b"\r\n\r\n"
        + body,
    )
    assert response.startswith(b"HTTP/1.1 201"), response


def test_oversized_body_is_refused(server: ServerProcess) -> None:
    big = json.dumps({"data": "x" * 70_000}).encode()
    status, _, body = send(server.url, "POST", "/push/publish/c", big, Authorization=BEARER)
    assert status == 413 and "bytes" in json.loads(body)["error"]


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("POST", "/push/sse/c", "GET"),
        ("PUT", "/push/poll/c", "GET"),
        ("DELETE", "/push/stream/c", "GET"),
        ("GET", "/push/publish/c", "POST"),
        ("POST", "/push/client.js", "GET, HEAD"),
    ],
)
def test_wrong_method_answers_405_with_allow(
    server: ServerProcess, method: str, path: str, allow: str
) -> None:
    status, headers, body = send(server.url, method, path)
    assert status == 405 and headers["Allow"] == allow and json.loads(body)["error"]


@pytest.mark.parametrize("path", ["/push", "/push/", "/push/nothing", "/push/sse", "/push/x/y"])
def test_unknown_paths_under_the_prefix_answer_404(server: ServerProcess, path: str) -> None:
    status, headers, body = send(server.url, "GET", path)
    assert (status, headers["Content-Type"]) == (404, "application/json")
    assert json.loads(body)["error"]


def test_bad_requests_disturb_no_one_and_lose_nothing(server: ServerProcess) -> None:
    kept = [publish(server.url, "steady", n) for n in range(3)]
    with requests.get(f"{server.url}/push/sse/steady", stream=True, timeout=5) as response:
        events = sse_events(response)
        for path in ["/push/sse/..", "/push/poll/steady?since=-1", "/push/nothing"]:
            assert send(server.url, "GET", path)[0] in (400, 404)
        assert (
            send(server.url, "POST", "/push/publish/steady", b"{", Authorization=BEARER)[0] == 400
        )
        fresh = publish(server.url, "steady", "after the noise")
        event = next(events)
        assert (event.id, event.data) == (str(fresh), "after the noise")
    answer = requests.get(f"{server.url}/push/poll/steady?since=0", timeout=5).json()
    assert item_ids(answer["messages"]) == [*kept, fresh]


@pytest.mark.parametrize(
    "body",
    [
        b'{"data":"x","event":"\\ud800"}',
        b'{"data":"x","event":"a\\udfffb"}',
        b'{"data":"\\ud800"}',
        b'{"data":{"\\udc00":1}}',
        b'{"data":["ok","\\udbff"]}',
        b'{"data":"x","event":"error"}',
        b'{"data":"x","event":"open"}',
    ],
)
def test_unencodable_or_reserved_publishes_are_refused_and_the_channel_works(
    server: ServerProcess, body: bytes
) -> None:
    """A lone surrogate (in the event name, a string or a key) or a reserved
    event name is refused; the error doesn't echo it, and the channel keeps
    answering on every transport."""
    channel = f"poison-{zlib.crc32(body)}"
    status, headers, answer = send(
        server.url, "POST", f"/push/publish/{channel}", body, Authorization=BEARER
    )
    assert (status, headers["Content-Type"]) == (400, "application/json")
    error = json.loads(answer)["error"]
    assert b"\\u" not in answer and all(not 0xD800 <= ord(char) <= 0xDFFF for char in error)
    fresh = publish(server.url, channel, "after", event="Error")  # case-sensitive: allowed
    poll = requests.get(f"{server.url}/push/poll/{channel}?since=0&timeout=0", timeout=5)
    assert poll.status_code == 200 and item_ids(poll.json()["messages"]) == [fresh]
    with requests.get(f"{server.url}/push/sse/{channel}?since=0", stream=True, timeout=5) as sse:
        event = next(sse_events(sse))
    assert (event.id, event.event, event.data) == (str(fresh), "Error", "after")


def test_client_script_is_cached_with_etag(server: ServerProcess) -> None:
    response = requests.get(f"{server.url}/push/client.js", timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/javascript")
    etag = response.headers["ETag"]
    assert "max-age" in response.headers["Cache-Control"]
    again = requests.get(f"{server.url}/push/client.js", headers={"If-None-Match": etag}, timeout=5)
    assert again.status_code == 304 and again.content == b""


def test_publishing_is_disabled_without_token_or_authorize() -> None:
    """Unit (no socket): the default middleware refuses HTTP publishing with 404."""
    client = Client(PushMiddleware(lambda e, s: [], broker=MemoryBroker()))
    response = client.post("/push/publish/news", json={"data": 1})
    assert response.status_code == 404 and response.json == {
        "error": "publishing over HTTP is disabled"
    }


def test_authorize_callback_decides_subscribe_and_publish() -> None:
    """Unit (no socket): ``authorize`` gets environ, channel and action."""
    seen = []

    def authorize(environ: dict[str, object], channel: str, action: str) -> bool:
        seen.append((channel, action))
        return channel.startswith("public")

    broker = MemoryBroker()
    client = Client(PushMiddleware(lambda e, s: [], broker=broker, authorize=authorize))
    assert client.get("/push/poll/private?timeout=0").status_code == 403
    assert client.post("/push/publish/private", json={"data": 1}).status_code == 403
    answer = client.post("/push/publish/public", json={"data": 1, "event": "e"})
    assert answer.status_code == 201 and answer.json == {"id": 1}
    assert client.get("/push/poll/public?since=0&timeout=0").json["messages"] == [
        {"id": 1, "event": "e", "data": 1}
    ]
    assert seen == [
        ("private", "subscribe"),
        ("private", "publish"),
        ("public", "publish"),
        ("public", "subscribe"),
    ]


class DownBroker(MemoryBroker):
    """A broker whose backend is unreachable (as RedisBroker during an outage)."""

    def last_id(self, channel: str) -> int:
        raise BrokerUnavailable("broker down")


@pytest.mark.parametrize("transport", ["sse", "stream", "poll"])
def test_a_refused_subscriber_gives_its_connection_slot_back(transport: str) -> None:
    """Unit (no socket): a subscribe that fails after taking a slot (broker
    down, authorize saying no) releases it, so the limit isn't used up."""
    middleware = PushMiddleware(
        lambda e, s: [], broker=DownBroker(), max_connections=2, authorize=lambda e, c, a: c != "no"
    )
    client = Client(middleware)
    for _ in range(3):
        down = client.get(f"/push/{transport}/news")
        assert down.status_code == 503 and down.json == {"error": "broker down"}
        assert client.get(f"/push/{transport}/no").status_code == 403
    assert middleware.connections.total == 0
    assert middleware.stats_snapshot()["broker_unavailable"] == 3
    assert middleware.stats_snapshot()["refused_over_limit"] == 0


def test_an_exception_in_an_app_callback_answers_json_500() -> None:
    """Unit (no socket): errors under the prefix are JSON even when the app's
    own ``authorize`` raises."""

    def authorize(environ: dict[str, object], channel: str, action: str) -> bool:
        raise RuntimeError("the session store is down")

    middleware = PushMiddleware(lambda e, s: [], broker=MemoryBroker(), authorize=authorize)
    answer = Client(middleware).get("/push/poll/news?timeout=0")
    assert answer.status_code == 500 and answer.json == {"error": "internal server error"}
    assert answer.headers["Content-Type"] == "application/json"
    assert middleware.connections.total == 0


def test_a_non_ascii_publish_token_is_compared_as_the_bytes_sent() -> None:
    """Unit (no socket): WSGI hands header bytes over as latin-1 text."""
    broker = MemoryBroker()
    client = Client(PushMiddleware(lambda e, s: [], broker=broker, publish_token="t\u00f6k\u00e9n"))
    as_sent = "Bearer " + "t\u00f6k\u00e9n".encode().decode("latin-1")
    answer = client.post("/push/publish/news", json={"data": 1}, headers={"Authorization": as_sent})
    assert answer.status_code == 201 and broker.last_id("news") == 1


def test_publishing_disabled_over_a_socket_answers_404_and_subscribing_works() -> None:
    with pywsgi_server(PUSH_TEST_PUBLISH_TOKEN="") as closed:
        refused = requests.post(f"{closed.url}/push/publish/news", json={"data": 1}, timeout=5)
        assert refused.status_code == 404
        assert refused.headers["Content-Type"] == "application/json"
        assert refused.json() == {"error": "publishing over HTTP is disabled"}
        answer = requests.get(f"{closed.url}/push/poll/news?since=0&timeout=0", timeout=5)
        assert answer.status_code == 200 and answer.json()["messages"] == []
