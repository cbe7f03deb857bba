"""Graceful shutdown: on SIGTERM, open streams and long polls end cleanly and
at once, so clients reconnect to a live process; the process exits by itself."""

from __future__ import annotations

import codecs
import json
import signal
import socket
import threading
import time
from typing import Any

import pytest
import requests
from werkzeug.test import Client

from tests.support.clients import AUTH, TRANSPORTS, SSEParser
from tests.support.publishers import ContinuousPublisher
from tests.support.redis_server import RedisServer
from tests.support.servers import (
    ServerProcess,
    free_port,
    gunicorn_server,
    open_connections,
    pywsgi_server,
    tcp_connections,
    wait_until,
)
from wsgi_push import MemoryBroker, PushMiddleware

PUSH_WORKER = "wsgi_push.gunicorn.GeventWorker"
# How soon after SIGTERM streams and held polls must have ended: pywsgi drains
# at once; the gunicorn worker notices the signal on its 1 s tick.
ENDED_WITHIN = {"pywsgi": 2.0, "gunicorn": 3.5}


def read_until_end(response: requests.Response, ended: list[float]) -> None:
    """Consume a stream; record when it ended cleanly (chunked terminator)."""
    for _ in response.iter_content(chunk_size=None):
        pass
    ended.append(time.monotonic())


def hold_streams(server: ServerProcess) -> tuple[list[threading.Thread], list[float]]:
    ended: list[float] = []
    readers = []
    for transport in ("sse", "stream"):
        response = requests.get(f"{server.url}/push/{transport}/bye", stream=True, timeout=30)
        assert response.status_code == 200
        reader = threading.Thread(target=read_until_end, args=(response, ended))
        reader.start()
        readers.append(reader)
    return readers, ended


def hold_poll(
    server: ServerProcess,
) -> tuple[threading.Thread, list[tuple[float, requests.Response]]]:
    """A long poll on an empty channel, held (the server's poll timeout is 30 s).

    Once it is answered, a client that was not told ``Connection: close``
    polls again on the same kept-alive connection, as browsers do."""
    polls: list[tuple[float, requests.Response]] = []

    def poll() -> None:
        with requests.Session() as session:
            since = 0
            while not polls or polls[-1][1].headers.get("Connection", "").lower() != "close":
                response = session.get(
                    f"{server.url}/push/poll/bye",
                    params={"since": since, "timeout": 30},
                    timeout=30,
                )
                polls.append((time.monotonic(), response))
                since = response.json()["last_id"]

    poller = threading.Thread(target=poll)
    poller.start()
    return poller, polls


def check_poll_answered_by_drain(
    polls: list[tuple[float, requests.Response]], signalled: float, within: float
) -> None:
    """The held poll, and the poll after it if the client was not yet told to
    go, were answered early, empty, with the position to pass next; the last
    answer told the client to reconnect on a fresh connection."""
    assert polls, "the held long poll was not answered"
    for answered, response in polls:
        assert answered - signalled < within
        assert response.status_code == 200
        assert response.json() == {"channel": "bye", "messages": [], "last_id": 0, "gap": None}
    assert polls[-1][1].headers["Connection"].lower() == "close"


def test_pywsgi_sigterm_ends_streams_and_polls_at_once() -> None:
    server = pywsgi_server(PUSH_TEST_HEARTBEAT="30", PUSH_TEST_POLL_TIMEOUT="30")
    try:
        readers, ended = hold_streams(server)
        poller, polls = hold_poll(server)
        wait_until(lambda: open_connections(server) == 3, 5, "three open connections")
        signalled = time.monotonic()
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        for thread in [*readers, poller]:
            thread.join(5)
        assert len(ended) == 2 and max(ended) - signalled < ENDED_WITHIN["pywsgi"]
        check_poll_answered_by_drain(polls, signalled, ENDED_WITHIN["pywsgi"])
        assert len(polls) == 1, "the held poll's own answer says Connection: close"
        assert server.process.wait(10) == 0
    finally:
        server.stop()


def test_pywsgi_sigterm_closes_idle_kept_alive_connections_without_waiting() -> None:
    """A browser keeps connections alive between requests: such an idle
    connection has nothing in progress, so it does not hold the exit for the
    stop timeout (5 s) the way a request in progress does."""
    server = pywsgi_server()
    try:
        with requests.Session() as session:
            answer = session.get(f"{server.url}/push/poll/idle?since=0&timeout=0", timeout=5)
            assert answer.status_code == 200 and "close" not in answer.headers.get("Connection", "")
            wait_until(lambda: open_connections(server, "poll") == 0, 5, "the poll to end")
            assert server.process is not None
            signalled = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            assert server.process.wait(10) == 0
            assert time.monotonic() - signalled < 1.0, "an idle connection held the exit"
    finally:
        server.stop()


@pytest.fixture
def push_worker_gunicorn() -> ServerProcess:
    return gunicorn_server(
        free_port(),
        worker_class=PUSH_WORKER,
        PUSH_TEST_HEARTBEAT="30",
        PUSH_TEST_POLL_TIMEOUT="30",
    )


def test_gunicorn_worker_ends_streams_and_polls_before_the_graceful_timeout(
    push_worker_gunicorn: ServerProcess,
) -> None:
    """The worker drains push connections as soon as it stops accepting: the
    streams end cleanly and the held long poll is answered long before
    gunicorn's 5 s graceful timeout (and the 30 s poll timeout)."""
    server = push_worker_gunicorn
    try:
        readers, ended = hold_streams(server)
        poller, polls = hold_poll(server)
        wait_until(lambda: open_connections(server) == 3, 5, "two open streams and a held poll")
        signalled = time.monotonic()
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        for thread in [*readers, poller]:
            thread.join(10)
        assert len(ended) == 2 and max(ended) - signalled < ENDED_WITHIN["gunicorn"]
        # gunicorn drops the app's Connection header (hop-by-hop) and keeps
        # alive a response begun before SIGTERM: the client may poll once more
        # on that connection, and that poll is answered at once with close.
        check_poll_answered_by_drain(polls, signalled, ENDED_WITHIN["gunicorn"])
        assert len(polls) <= 2
        assert server.process.wait(10) == 0
    finally:
        server.stop()


def test_requests_during_drain_end_at_once_with_connection_close() -> None:
    """Unit: a drained middleware answers subscribers with a finished stream."""
    middleware = PushMiddleware(lambda e, s: [], broker=MemoryBroker())
    middleware.drain()
    client = Client(middleware)
    sse = client.get("/push/sse/x")
    assert sse.status_code == 200 and sse.data == b"retry: 2000\n\n"
    assert sse.headers["Connection"] == "close"
    poll = client.get("/push/poll/x?since=0&timeout=20")
    assert poll.json == {"channel": "x", "messages": [], "last_id": 0, "gap": None}


# A rolling restart ---------------------------------------------------------


class Resumer:
    """A client of one transport behind a load balancer that moves it: it
    follows ``channel`` on ``leaving`` until that server ends its connection
    (a stream's chunked body ends, or a poll answer says ``Connection:
    close``), then at once resumes on ``survivor`` from the last id it saw
    (``Last-Event-ID`` or ``since``) — what EventSource and client.js do.
    It stops once it has ``through`` (set at the end). Items are messages as
    ``{"id", "event", "data"}``; a gap notice would show as one without id."""

    def __init__(
        self, transport: str, channel: str, leaving: ServerProcess, survivor: ServerProcess
    ) -> None:
        self.transport = transport
        self.channel = channel
        self.items: list[dict[str, Any]] = []
        self.position = 0  # the last id received
        self.through: int | None = None
        self.left: float | None = None  # when ``leaving`` ended our connection, cleanly
        self.on_leaving = 0  # messages received from ``leaving``
        self.resumed: float | None = None  # when ``survivor`` answered the resume
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(leaving, survivor), daemon=True)
        self._thread.start()

    def _run(self, leaving: ServerProcess, survivor: ServerProcess) -> None:
        try:
            assert self._follow(leaving.url), "the client stopped before the server went away"
            self.left = time.monotonic()
            self.on_leaving = len(self.items)
            assert not self._follow(survivor.url, resuming=True), "the survivor ended it"
        except BaseException as error:
            self.error = error

    def _done(self) -> bool:
        return self.through is not None and self.position >= self.through

    def _receive(self, received: list[dict[str, Any]]) -> None:
        self.items.extend(received)
        for item in received:
            self.position = item.get("id") or self.position

    def _follow(self, base_url: str, resuming: bool = False) -> bool:
        """Receive from one server; True once the server ended the connection,
        False once done. A connection cut without a clean end raises."""
        if self.transport == "poll":
            return self._poll(base_url, resuming)
        if self.transport == "sse":
            path, headers = f"/push/sse/{self.channel}", {"Last-Event-ID": str(self.position)}
        else:
            path, headers = f"/push/stream/{self.channel}?since={self.position}", {}
        with requests.get(base_url + path, headers=headers, stream=True, timeout=5) as response:
            assert response.status_code == 200, response.text
            if resuming:
                self.resumed = time.monotonic()
            decode = self._sse_decoder() if self.transport == "sse" else self._ndjson_decoder()
            # A body cut short raises (ChunkedEncodingError): only a
            # finished chunked body ends this loop.
            for chunk in response.iter_content(chunk_size=None):
                self._receive(decode(chunk))
                if self._done():
                    return False
        return True

    @staticmethod
    def _sse_decoder() -> Any:
        parser = SSEParser()
        text = codecs.getincrementaldecoder("utf-8")()

        def decode(chunk: bytes) -> list[dict[str, Any]]:
            return [
                {"event": event.event, "data": json.loads(event.data)}
                | ({} if event.id is None else {"id": int(event.id)})
                for event in parser.feed(text.decode(chunk))
            ]

        return decode

    @staticmethod
    def _ndjson_decoder() -> Any:
        rest = b""

        def decode(chunk: bytes) -> list[dict[str, Any]]:
            nonlocal rest
            *lines, rest = (rest + chunk).split(b"\n")
            return [json.loads(line) for line in lines if line.strip()]  # "" is a heartbeat

        return decode

    def _poll(self, base_url: str, resuming: bool) -> bool:
        with requests.Session() as session:
            while not self._done():
                try:
                    response = session.get(
                        f"{base_url}/push/poll/{self.channel}",
                        params={"since": self.position, "timeout": 1 if resuming else 20},
                        timeout=25,
                    )
                except requests.ConnectionError:
                    if resuming:
                        raise
                    # Between two polls: the leaving server closed our idle
                    # kept-alive connection and its listener (HTTP's usual
                    # race); nothing was in flight, so resume elsewhere.
                    return True
                assert response.status_code == 200, response.text
                if resuming and self.resumed is None:
                    self.resumed = time.monotonic()
                answer = response.json()
                if answer["gap"] is not None:
                    self._receive([{"event": "gap", "data": answer["gap"]}])
                self._receive(answer["messages"])
                self.position = answer["last_id"]
                if response.headers.get("Connection", "").lower() == "close":
                    return True  # the server is going away: reconnect elsewhere
        return False

    def check(self) -> None:
        if self.error is not None:
            raise AssertionError(f"{self.transport} client failed: {self.error!r}") from self.error

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"{self.transport} client did not finish"
        self.check()


TEST_APP = "tests.support.apps:app"


class ExitWatch:
    """When a server process exits, noted as it happens (the test is busy
    with its clients meanwhile)."""

    def __init__(self, server: ServerProcess) -> None:
        assert server.process is not None
        self._process = server.process
        self._exited: tuple[int, float] | None = None
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        code = self._process.wait()
        self._exited = (code, time.monotonic())

    def result(self, timeout: float) -> tuple[int, float]:
        """The exit code and the monotonic time of the exit."""
        self._thread.join(timeout)
        assert self._exited is not None, f"the server did not exit within {timeout}s"
        return self._exited


def start_leaving(kind: str, env: dict[str, str]) -> ServerProcess:
    """The server to be restarted: pywsgi, or gunicorn with the push worker."""
    if kind == "pywsgi":
        return pywsgi_server(TEST_APP, (), **env)
    return gunicorn_server(free_port(), TEST_APP, 1, PUSH_WORKER, **env)


@pytest.mark.parametrize("kind", ["pywsgi", "gunicorn"])
def test_rolling_restart_clients_resume_on_the_survivor_losing_nothing(
    redis_server: RedisServer, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two processes on one redis-server. An SSE, an NDJSON and a long-polling
    client follow a channel on the leaving process while a thread publishes
    through the survivor without pause. On SIGTERM each client's connection
    ends cleanly within the drain bound, the client resumes on the survivor
    from its last id, and in the end it has every id exactly once, in order;
    the leaving process exits 0 by itself."""
    channel = f"rolling-{kind}"
    env = {
        "PUSH_TEST_REDIS_URL": redis_server.url,
        "PUSH_TEST_MAX_MESSAGES": "10000",
        "PUSH_TEST_POLL_TIMEOUT": "30",
    }
    publisher: ContinuousPublisher | None = None
    clients: list[Resumer] = []
    # The survivor heartbeats, so that its clients notice "through" even when idle.
    with (
        pywsgi_server(TEST_APP, (), **{**env, "PUSH_TEST_HEARTBEAT": "0.5"}) as survivor,
        start_leaving(kind, {**env, "PUSH_TEST_HEARTBEAT": "30"}) as leaving,
    ):
        assert leaving.process is not None
        try:
            clients = [Resumer(t, channel, leaving, survivor) for t in TRANSPORTS]

            def every_client(condition: Any) -> bool:
                for client in clients:
                    client.check()
                if publisher is not None:
                    publisher.check()
                return all(condition(client) for client in clients)

            wait_until(
                lambda: open_connections(leaving, "sse") + open_connections(leaving, "stream") == 2,
                5,
                "both streams open on the leaving server",
            )
            publisher = ContinuousPublisher(survivor, channel)
            wait_until(
                lambda: every_client(lambda c: c.position >= publisher.id_of(20)),
                10,
                "every client to receive 20 messages from the leaving server",
            )
            signalled = time.monotonic()
            leaving.process.send_signal(signal.SIGTERM)
            exit_watch = ExitWatch(leaving)
            wait_until(
                lambda: every_client(lambda c: c.resumed is not None),
                10,
                "every client to resume on the survivor",
            )
            live_from = publisher.last_id
            wait_until(
                lambda: every_client(lambda c: c.position >= live_from + 20),
                10,
                "every client to receive 20 messages live from the survivor",
            )
            last_published = publisher.stop()
            for client in clients:
                client.through = last_published
            for client in clients:
                client.join(10)
            exit_code, exited = exit_watch.result(10)
        finally:
            if publisher is not None:
                publisher.halt()
    timings = {
        c.transport: (c.left - signalled, c.resumed - c.left)  # type: ignore[operator]
        for c in clients
    }
    with capsys.disabled():
        print(
            f"\nrolling restart ({kind}): {publisher.published} messages; after SIGTERM "
            + ", ".join(
                f"{transport} ended at {left * 1000:.0f} ms, resumed {resumed * 1000:.0f} ms later"
                for transport, (left, resumed) in timings.items()
            )
            + f"; the process exited at {(exited - signalled) * 1000:.0f} ms"
        )
    for client in clients:
        assert client.items == publisher.items(last_published), (
            f"{client.transport}: lost or repeated"
        )
        assert 0 < client.on_leaving < publisher.published, "both servers delivered"
        left, resumed = timings[client.transport]
        assert left < ENDED_WITHIN[kind], f"{client.transport} ended {left:.2f}s after SIGTERM"
        assert resumed < 1.0, f"{client.transport} took {resumed:.2f}s to resume"
    assert exit_code == 0


def refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.mark.parametrize("kind", ["pywsgi", "gunicorn"])
def test_sigterm_lets_a_request_in_progress_finish(kind: str) -> None:
    """A publish whose body is still arriving when SIGTERM comes is answered
    (step 3 of the shutdown: other requests get up to the stop or graceful
    timeout) with its id."""
    server = start_leaving(kind, {})
    try:
        port = int(server.url.rsplit(":", 1)[1])
        pid = requests.get(f"{server.url}/_test/state", timeout=5).json()["pid"]  # the worker's
        body = json.dumps({"data": "last words"}).encode()
        head = (
            f"POST /push/publish/bye HTTP/1.1\r\nHost: t\r\nAuthorization: {AUTH['Authorization']}"
            f"\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(head.encode() + body[:5])
            client_port = sock.getsockname()[1]
            wait_until(lambda: (port, client_port) in tcp_connections(pid), 5, "the accept")
            assert server.process is not None
            server.process.send_signal(signal.SIGTERM)
            wait_until(lambda: refuses_connections(port), 5, "the listener to close")
            answer = b""
            # A slow client: the rest of the body comes later than gevent's
            # default stop timeout (1 s), well within ours (5 s).
            time.sleep(1.5)
            try:
                sock.sendall(body[5:])
                while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    answer += chunk
            except ConnectionError:
                pass
        assert answer.startswith(b"HTTP/1.1 201 "), answer
        assert answer.endswith(b'{"id":1}'), answer
        assert server.process.wait(10) == 0
    finally:
        server.stop()
