"""Many processes on one Redis: ``gunicorn -k gevent -w N`` serving the test
app on a real redis-server, real HTTP clients on loopback.

Every client talks over a :class:`Pinned` connection: one keep-alive socket
that never reconnects, so the worker that served it is known for certain.
"""

from __future__ import annotations

import http.client
import json
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis
import requests

from tests.support.clients import (
    AUTH,
    Cursor,
    ItemParser,
    item_ids,
    items,
    multiplexed_items,
    poll_answer_items,
    publish,
    stream_request,
    take,
)
from tests.support.publishers import ContinuousPublisher
from tests.support.raw_http import open_stream_socket, read_until
from tests.support.redis_server import RedisServer
from tests.support.servers import (
    ROOT,
    ServerProcess,
    free_port,
    gunicorn_server,
    server_state,
    subscriber_count,
    tcp_connections,
    wait_until,
)
from wsgi_push import RedisBroker

HEARTBEAT = 0.5
POLL_TIMEOUT = 2
STREAMING = ("sse", "stream")
TRANSPORTS = ("sse", "stream", "poll")
NOTIFY_CHANNEL = "wsgi_push:notify"  # the test app's RedisBroker uses the default prefix
DEADLINE = 15.0  # the longest any client waits for what it expects
POOL_SIZE = 8  # RedisBroker's default max_connections per process


def cluster_env(redis_server: RedisServer) -> dict[str, str]:
    return {
        "PUSH_TEST_REDIS_URL": redis_server.url,
        "PUSH_TEST_HEARTBEAT": str(HEARTBEAT),
        "PUSH_TEST_POLL_TIMEOUT": str(POLL_TIMEOUT),
        "PUSH_TEST_MAX_MESSAGES": "5000",
    }


def start_cluster(
    redis_server: RedisServer, workers: int, port: int | None = None
) -> ServerProcess:
    """gunicorn with ``workers`` gevent workers, returned once every one answers.

    Kept-alive connections stay open 30 s (gunicorn's default is 2 s): a
    :class:`Pinned` client's next request may come later than that on a
    loaded machine, and the worker would have closed its connection.
    """
    server = gunicorn_server(
        port or free_port(),
        workers=workers,
        server_args=("--keep-alive", "30"),
        **cluster_env(redis_server),
    )
    try:
        worker_pids(server, workers)
    except BaseException:
        server.stop()
        raise
    return server


def worker_pids(server: ServerProcess, workers: int) -> set[int]:
    """The pids of the server's ``workers`` workers (each answers ``/_test/state``)."""
    seen: set[int] = set()

    def all_workers_answer() -> bool:
        seen.add(server_state(server)["pid"])
        return len(seen) == workers

    wait_until(all_workers_answer, 30, f"{workers} workers to answer")
    return seen


@pytest.fixture(scope="module")
def cluster(redis_server: RedisServer) -> Iterator[ServerProcess]:
    with start_cluster(redis_server, workers=3) as server:
        yield server


class Pinned:
    """One keep-alive HTTP/1.1 connection, so one worker (``pid``).

    It never reconnects (``auto_open`` off: a closed connection raises), so
    everything answered on it provably comes from that worker. ``state`` is
    the worker's ``/_test/state`` when the connection was made.
    """

    def __init__(self, server: ServerProcess) -> None:
        port = int(server.url.rsplit(":", 1)[1])
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.connection.connect()
        self.connection.auto_open = 0
        self.state: dict[str, Any] = self.get_json("/_test/state")
        self.pid: int = self.state["pid"]

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> http.client.HTTPResponse:
        self.connection.request(method, path, body=body, headers=headers or {})
        return self.connection.getresponse()

    def get_json(self, path: str) -> Any:
        response = self.request("GET", path)
        body = response.read()
        assert response.status == 200, body
        return json.loads(body)

    def publish(self, channel: str, data: Any) -> int:
        body = json.dumps({"data": data}).encode()
        headers = {**AUTH, "Content-Type": "application/json"}
        response = self.request("POST", f"/push/publish/{channel}", body, headers)
        answer = response.read()
        assert response.status == 201, answer
        message_id: int = json.loads(answer)["id"]
        return message_id

    def close(self) -> None:
        self.connection.close()


def pin(server: ServerProcess, accept: Callable[[int], bool] = lambda pid: True) -> Pinned:
    """A :class:`Pinned` connection that landed on a worker ``accept`` likes."""

    def attempt() -> Pinned | None:
        pinned = Pinned(server)
        if accept(pinned.pid):
            return pinned
        pinned.close()
        return None

    found: Pinned = wait_until(attempt, 30, "a connection to that worker", interval=0)
    return found


def pin_each(server: ServerProcess, count: int) -> list[Pinned]:
    """``count`` connections, each on a different worker."""
    pinned: list[Pinned] = []
    for _ in range(count):
        pinned.append(pin(server, lambda pid: pid not in {p.pid for p in pinned}))
    return pinned


def worker_state(server: ServerProcess, pid: int) -> dict[str, Any]:
    """``/_test/state`` of the worker ``pid``, asked over a fresh connection."""
    pinned = pin(server, lambda answered: answered == pid)
    pinned.close()
    return pinned.state


class Client:
    """What every transport's client does: collect items (messages as
    ``{"id", "event", "data"}``, gap notices without ``id``) and hand them
    out, each wait bounded by a deadline."""

    def __init__(self, pinned: Pinned, transport: str) -> None:
        self.pid = pinned.pid
        self.transport = transport
        self.pending: list[dict[str, Any]] = []

    def _more(self) -> bool:
        """Receive what comes next (blocking, bounded); False once the server ended."""
        raise NotImplementedError

    def _receive(self, enough: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not enough():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.transport} client on worker {self.pid}: no {what} after {timeout}s; "
                    f"got {[item.get('id') for item in self.pending]}"
                )
            if not self._more():
                raise AssertionError(f"{self.transport} client on worker {self.pid}: ended")

    def take(self, count: int, timeout: float = DEADLINE) -> list[dict[str, Any]]:
        """The next ``count`` items."""
        self._receive(lambda: len(self.pending) >= count, timeout, f"{count} items")
        taken, self.pending = self.pending[:count], self.pending[count:]
        return taken

    def take_through(self, last_id: int, timeout: float = DEADLINE) -> list[dict[str, Any]]:
        """Every item up to and including the first with an id >= ``last_id``."""

        def reached() -> int | None:
            for index, item in enumerate(self.pending):
                if item.get("id", 0) >= last_id:
                    return index + 1
            return None

        self._receive(lambda: reached() is not None, timeout, f"id {last_id}")
        end = reached()
        taken, self.pending = self.pending[:end], self.pending[end:]
        return taken

    def received(self) -> list[dict[str, Any]]:
        """What has arrived and was not handed out yet."""
        taken, self.pending = self.pending, []
        return taken


class Subscriber(Client):
    """One SSE or NDJSON stream read incrementally; heartbeats are visible."""

    def __init__(self, pinned: Pinned, transport: str, channel: str, after: int) -> None:
        super().__init__(pinned, transport)
        path, headers = stream_request(transport, channel, after)
        self.pinned = pinned
        self.response = pinned.request("GET", path, headers=headers)
        assert self.response.status == 200, self.response.read()
        self.parser = ItemParser(transport)

    def _chunk(self) -> bytes:
        return self.response.read1(65536)  # b"" once the stream has ended

    def _more(self) -> bool:
        chunk = self._chunk()
        self.pending.extend(self.parser.feed(chunk))
        return bool(chunk)

    def until_end(self, timeout: float = DEADLINE) -> list[dict[str, Any]]:
        """Everything received until the server ends the stream."""
        deadline = time.monotonic() + timeout
        while self._more():
            assert time.monotonic() < deadline, f"the stream did not end within {timeout}s"
        return self.received()

    def heartbeat(self) -> None:
        """Wait for the next chunk and check it carries no message."""
        assert self.parser.feed(self._chunk()) == []

    def close(self) -> None:
        self.pinned.close()


class Poller(Client):
    """A long-polling client: each request passes ``since=<the last id it has>``."""

    def __init__(self, pinned: Pinned, channel: str, after: int) -> None:
        super().__init__(pinned, "poll")
        self.pinned = pinned
        self.channel = channel
        self.position = after
        self.answers_with_messages = 0

    def _more(self) -> bool:
        path = f"/push/poll/{self.channel}?since={self.position}&timeout={POLL_TIMEOUT}"
        answer = self.pinned.get_json(path)
        self.pending.extend(poll_answer_items(answer))
        self.answers_with_messages += bool(answer["messages"])
        self.position = answer["last_id"]
        return True

    def close(self) -> None:
        self.pinned.close()


def subscribe(pinned: Pinned, transport: str, channel: str, after: int) -> Subscriber | Poller:
    if transport == "poll":
        return Poller(pinned, channel, after)
    return Subscriber(pinned, transport, channel, after)


def open_channel(base_url: str, channel: str) -> int:
    """Publish a channel's first message, ``{"n": 0}``, and return its id:
    the zero that a test counts ids from (a channel's first id comes from
    Redis's clock, see docs/redis.md)."""
    return publish(base_url, channel, {"n": 0})


def expected(zero: int, first: int, last: int) -> list[dict[str, Any]]:
    """Messages ``{"n": first}`` .. ``{"n": last}`` with ids counted from ``zero``."""
    return [{"id": zero + n, "event": "message", "data": {"n": n}} for n in range(first, last + 1)]


def test_subscribers_on_every_worker_get_every_message_in_order(cluster: ServerProcess) -> None:
    """One subscriber of each transport on each of the 3 workers. Before each
    burst of publishes every long poller is parked in a request on its worker,
    so the burst wakes it and it polls again with ``since=<last id>``."""
    channel = "everyone"
    zero = open_channel(cluster.url, channel)
    streams = [Subscriber(p, t, channel, zero) for t in STREAMING for p in pin_each(cluster, 3)]
    pollers = [Poller(p, channel, zero) for p in pin_each(cluster, 3)]
    for group in (streams[:3], streams[3:], pollers):
        assert len({client.pid for client in group}) == 3, "one of each on every worker"

    def every_poller_parked() -> bool:
        return all(
            worker_state(cluster, poller.pid)["connections"].get("poll", 0) >= 1
            for poller in pollers
        )

    with ThreadPoolExecutor(len(pollers)) as pool:
        polled = [pool.submit(poller.take_through, zero + 30) for poller in pollers]
        for first in range(1, 31, 5):
            wait_until(every_poller_parked, 10, "every poller to wait in a long poll")
            for n in range(first, first + 5):
                assert publish(cluster.url, channel, {"n": n}) == zero + n
        results = [future.result(timeout=DEADLINE + 5) for future in polled]
    for poller, result in zip(pollers, results, strict=True):
        assert result == expected(zero, 1, 30), ("poll", poller.pid)
        assert poller.answers_with_messages >= 6, "every burst woke a waiting long poll"
    for stream in streams:
        assert stream.take_through(zero + 30) == expected(zero, 1, 30), stream.transport
    # Exactly once: the next thing anyone receives is the next message.
    assert publish(cluster.url, channel, {"n": 31}) == zero + 31
    for client in [*streams, *pollers]:
        assert client.take(1) == expected(zero, 31, 31), (client.transport, client.pid)
        client.close()


def test_publishers_in_three_processes_get_3000_consecutive_ids(
    cluster: ServerProcess, redis_server: RedisServer
) -> None:
    channel = "race"
    zero = open_channel(cluster.url, channel)
    subscriber = Subscriber(pin(cluster), "stream", channel, zero)
    publishers = [
        subprocess.Popen(
            [sys.executable, "-c", _PUBLISHER, redis_server.url, channel, str(index)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for index in range(3)
    ]
    try:
        for process in publishers:
            assert process.stdout is not None and process.stdout.readline() == "ready\n"
        for process in publishers:  # start together
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        results = [json.loads(process.communicate(timeout=60)[0]) for process in publishers]
    finally:
        for process in publishers:
            if process.poll() is None:
                process.kill()
                process.wait(10)
    assert sorted(sum(results, [])) == list(range(zero + 1, zero + 3001))
    received = subscriber.take(3000, timeout=60)
    subscriber.close()
    assert item_ids(received) == list(range(zero + 1, zero + 3001))
    assert sorted((item["data"]["p"], item["data"]["k"]) for item in received) == [
        (p, k) for p in range(3) for k in range(1000)
    ]


# A publisher process: 1,000 publishes from 50 concurrent greenlets.
_PUBLISHER = """
from gevent import monkey; monkey.patch_all()
import json, sys
from gevent.pool import Pool
from wsgi_push import RedisBroker
url, channel, index = sys.argv[1], sys.argv[2], int(sys.argv[3])
broker = RedisBroker.from_url(url, max_messages=5000)
broker.last_id(channel)  # connect before the start signal
print("ready", flush=True)
sys.stdin.readline()
ids = Pool(50).map(lambda k: broker.publish(channel, {"p": index, "k": k}), range(1000))
print(json.dumps(ids))
"""


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_subscriber_moved_to_another_worker_mid_stream_loses_nothing(
    cluster: ServerProcess, transport: str
) -> None:
    """Publishing never pauses: the client receives live on one worker, is cut
    off (the worker ends its streams; a poller just drops its connection),
    misses messages while away, and resumes on another worker from the last
    id it saw, receiving live again."""
    channel = f"moving-{transport}"
    first = pin(cluster)
    client = subscribe(first, transport, channel, 0)
    publisher = ContinuousPublisher(cluster, channel)
    try:
        seen = client.take(20)  # live, while publishing goes on
        if isinstance(client, Subscriber):
            cut = pin(cluster, lambda pid: pid == first.pid)
            response = cut.request("POST", "/_test/cut")
            assert response.status == 204, response.read()
            cut.close()
            seen += client.until_end()
        seen += client.received()
        client.close()
        last_seen = seen[-1]["id"]
        publisher.wait_for(last_seen + 10)  # published while the client is away
        resumed = subscribe(
            pin(cluster, lambda pid: pid != first.pid), transport, channel, last_seen
        )
        live_from = publisher.last_id + 1
        # Through messages published after the client came back.
        seen += resumed.take_through(live_from + 10)
    finally:
        last_published = publisher.stop()
    assert resumed.pid != client.pid
    if seen[-1]["id"] < last_published:
        seen += resumed.take_through(last_published)
    assert seen == publisher.items(last_published), transport
    zero = publisher.id_of(0)
    n = publisher.published + 1
    assert publish(cluster.url, channel, {"n": n}) == last_published + 1
    assert resumed.take(1) == expected(zero, n, n), "exactly once"
    resumed.close()


def test_publish_to_receive_latency_across_processes(
    cluster: ServerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    """Publish over HTTP through one worker, receive over SSE on another."""
    channel = "latency"
    zero = open_channel(cluster.url, channel)
    subscriber = Subscriber(pin(cluster), "sse", channel, zero)
    publisher = pin(cluster, lambda pid: pid != subscriber.pid)
    latencies = []
    for n in range(1, 301):
        started = time.perf_counter()
        assert publisher.publish(channel, {"n": n}) == zero + n
        assert subscriber.take(1) == expected(zero, n, n)
        latencies.append(time.perf_counter() - started)
    subscriber.close()
    publisher.close()
    cuts = statistics.quantiles(latencies, n=100)
    p50, p99 = cuts[49] * 1000, cuts[98] * 1000
    with capsys.disabled():  # shown without -s: this is the number docs quote
        print(
            f"\nLATENCY publish->receive across processes (HTTP publish on worker "
            f"{publisher.pid}, SSE on worker {subscriber.pid}, {len(latencies)} messages): "
            f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {max(latencies) * 1000:.1f} ms"
        )
    assert p99 < 1000, "a loaded machine is slow, but not a second slow"


def test_killed_listeners_cost_latency_never_data(
    cluster: ServerProcess, redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only the listeners' pub/sub connections are killed (``CLIENT KILL TYPE
    pubsub``) and messages are published while they are down, so their
    notifications reach no worker. Every subscriber on every worker and
    transport still gets every message, in order, exactly once."""
    channel = "listener-killed"
    redis_client = redis_server.client()
    outside = RedisBroker.from_url(redis_server.url, max_messages=5000)

    def listeners() -> int:
        count: int = redis_client.pubsub_numsub(NOTIFY_CHANNEL)[0][1]
        return count

    published = 0
    zero = outside.publish(channel, {"n": 0})

    def publish_next() -> None:
        nonlocal published
        published += 1
        assert outside.publish(channel, {"n": published}) == zero + published

    held_down, raced, per_race = 5, 5, 2
    total = held_down + raced * per_race
    streams = [Subscriber(p, t, channel, zero) for t in STREAMING for p in pin_each(cluster, 3)]
    pollers = [Poller(p, channel, zero) for p in pin_each(cluster, 3)]
    wait_until(lambda: listeners() == 3, 10, "a listener in each of the 3 workers")
    try:
        with ThreadPoolExecutor(len(pollers)) as pool:
            polled = [pool.submit(poller.take_through, zero + total) for poller in pollers]
            # Held down: the listeners may not subscribe again until we allow it.
            redis_client.execute_command("ACL", "SETUSER", "default", "-subscribe")
            try:
                assert redis_client.client_kill_filter(_type="pubsub") == 3
                for _ in range(held_down):
                    publish_next()
                assert listeners() == 0, "these notifications reached no worker"
            finally:
                redis_client.execute_command("ACL", "SETUSER", "default", "+subscribe")
            # Raced: publish straight after the kill, while they reconnect.
            unannounced = 0
            for _ in range(raced):
                wait_until(lambda: listeners() == 3, 10, "every listener to subscribe again")
                assert redis_client.client_kill_filter(_type="pubsub") == 3
                for _ in range(per_race):
                    publish_next()
                unannounced += listeners() < 3
            results = [future.result(timeout=DEADLINE + 5) for future in polled]
        for stream in streams:
            received = stream.take_through(zero + total)
            assert received == expected(zero, 1, total), (stream.transport, stream.pid)
        for poller, result in zip(pollers, results, strict=True):
            assert result == expected(zero, 1, total), ("poll", poller.pid)
        # The listeners are back: the next message arrives, and nothing twice.
        wait_until(lambda: listeners() == 3, 10, "every listener to subscribe again")
        assert publish(cluster.url, channel, {"n": total + 1}) == zero + total + 1
        for client in [*streams, *pollers]:
            received = client.take(1)
            assert received == expected(zero, total + 1, total + 1), client.transport
            client.close()
        with capsys.disabled():
            print(
                f"\nlisteners killed: {held_down} messages published while all were held down, "
                f"{unannounced} of {raced} kill-and-publish rounds beat their reconnection"
            )
    finally:
        outside.close()
        redis_client.close()


def test_whole_app_restarted_clients_resume_and_ids_continue(redis_server: RedisServer) -> None:
    channel = "restart"
    port = free_port()
    with start_cluster(redis_server, workers=2, port=port) as server:
        zero = open_channel(server.url, channel)
        for n in range(1, 4):
            publish(server.url, channel, {"n": n})
        assert take(items(server.url, "sse", channel, zero), 3) == expected(zero, 1, 3)
    # The app is down; a script publishes the way docs/redis.md shows.
    outside = RedisBroker.from_url(redis_server.url)
    assert [outside.publish(channel, {"n": n}) for n in (4, 5)] == [zero + 4, zero + 5]
    outside.close()
    with start_cluster(redis_server, workers=2, port=port) as server:
        for transport in ("sse", "stream", "poll"):
            source = items(server.url, transport, channel, zero + 3)
            assert take(source, 2) == expected(zero, 4, 5), transport
        assert publish(server.url, channel, {"n": 6}) == zero + 6
        assert take(items(server.url, "poll", channel, zero + 3), 3) == expected(zero, 4, 6)


def test_redis_restart_keeps_subscribers_heartbeating_then_gives_them_a_gap() -> None:
    """An append-only Redis restarts: publishers get 503 meanwhile and
    subscribers heartbeats; afterwards ids jump above the old ones (Redis
    can't tell whether it lost its newest writes) and each subscriber gets
    one gap notice, then every new message."""
    redis_server = RedisServer(persistent=True).start()
    try:
        with start_cluster(redis_server, workers=2) as server:
            channel = "outage"
            zero = open_channel(server.url, channel)
            subscribers = [
                Subscriber(pinned, transport, channel, zero)
                for transport in STREAMING
                for pinned in pin_each(server, 2)
            ]
            for n in range(1, 4):
                publish(server.url, channel, {"n": n})
            for subscriber in subscribers:
                assert subscriber.take(3) == expected(zero, 1, 3)

            redis_server.stop()
            refused = requests.post(
                f"{server.url}/push/publish/{channel}", json={"data": 0}, headers=AUTH, timeout=10
            )
            assert refused.status_code == 503 and refused.headers["Retry-After"]
            assert "error" in refused.json()
            for subscriber in subscribers:
                subscriber.heartbeat()  # still connected, still heartbeating

            redis_server.start()
            era = publish_when_back(server.url, channel, {"n": 4}) - 4
            assert era > zero + 3, "the new ids lie above the old ones"
            for n in range(5, 7):
                assert publish(server.url, channel, {"n": n}) == era + n
            for subscriber in subscribers:
                gap, *received = subscriber.take(4)
                assert gap["event"] == "gap" and gap["data"]["requested"] == zero + 3, gap
                assert received == expected(era, 4, 6)
                subscriber.close()
            assert take(items(server.url, "poll", channel, 0), 3) == expected(era, 4, 6)
    finally:
        redis_server.close()


def peers_by_worker(pids: set[int], port: int) -> dict[int, int]:
    """``{peer's port: pid}`` for every connection a worker holds with ``port``
    on either end: the worker's side of its Redis connections (``port`` is
    Redis's), or a client's side of the connections it accepted (the server's)."""
    owners = {}
    for pid in pids:
        for local, remote in tcp_connections(pid):
            if remote == port:
                owners[local] = pid
            elif local == port:
                owners[remote] = pid
    return owners


def redis_clients_by_worker(
    redis_client: redis.Redis, redis_port: int, pids: set[int]
) -> dict[int, list[dict[str, Any]]]:
    """``CLIENT LIST`` entries (except our own) by the worker holding each
    connection; every entry must belong to a worker."""

    def attempt() -> dict[int, list[dict[str, Any]]] | None:
        own = redis_client.client_id()
        entries = [e for e in redis_client.client_list() if int(e["id"]) != own]
        owners = peers_by_worker(pids, redis_port)
        by_worker: dict[int, list[dict[str, Any]]] = {pid: [] for pid in pids}
        for entry in entries:
            owner = owners.get(int(entry["addr"].rsplit(":", 1)[1]))
            if owner is None:
                return None  # connected by no worker, or closed since CLIENT LIST
            by_worker[owner].append(entry)
        return by_worker

    found: dict[int, list[dict[str, Any]]] = wait_until(
        attempt, 10, "every Redis connection to belong to a worker"
    )
    return found


def is_pubsub(entry: dict[str, Any]) -> bool:
    return int(entry["sub"]) + int(entry["psub"]) > 0


def test_redis_connections_depend_on_processes_not_subscribers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """CLIENT LIST, each connection attributed to the worker holding it: with
    1 subscriber per worker and with 500 per worker, each of the 2 workers
    has exactly one pub/sub connection and a pool capped at a handful."""
    channel = "crowd"
    per_worker = 500
    redis_server = RedisServer().start()  # its own, so that only this app's clients count
    redis_client = redis_server.client()
    with start_cluster(redis_server, workers=2) as server:
        pids = worker_pids(server, 2)
        server_port = int(server.url.rsplit(":", 1)[1])
        opened: dict[int, list[socket.socket]] = {pid: [] for pid in pids}
        path = f"/push/sse/{channel}?last_event_id=0"

        def subscribe_until(count: int) -> None:
            """SSE subscribers, ``count`` on each worker: connect, see in /proc
            which worker accepted each, keep those a worker still needs."""

            def placed() -> bool:
                missing = sum(count - len(held) for held in opened.values())
                fresh = {}
                for _ in range(missing):
                    sock = open_stream_socket(server.url, path, timeout=10)
                    fresh[sock.getsockname()[1]] = sock

                def accepted() -> dict[int, int] | None:
                    owners = peers_by_worker(pids, server_port)
                    return owners if owners.keys() >= fresh.keys() else None

                owners = wait_until(accepted, 10, "the workers to accept every connection")
                for port, sock in fresh.items():
                    held = opened[owners[port]]
                    if len(held) < count:
                        held.append(sock)
                    else:
                        sock.close()
                return all(len(held) == count for held in opened.values())

            wait_until(placed, 30, f"{count} connections on each worker", interval=0)
            wait_until(
                lambda: subscriber_count(server, channel) == count * len(pids),
                30,
                f"{count} subscribers on each worker",
            )

        def receive_everywhere(text: str) -> None:
            assert publish(server.url, channel, text) > 0
            for sock in sum(opened.values(), []):
                read_until(sock, f"data: {text}\n".encode())

        def snapshot() -> dict[int, tuple[int, int]]:
            """(connections, pub/sub connections) per worker."""
            by_worker = redis_clients_by_worker(redis_client, redis_server.port, pids)
            return {
                pid: (len(entries), sum(map(is_pubsub, entries)))
                for pid, entries in by_worker.items()
            }

        try:
            subscribe_until(1)
            receive_everywhere("one")
            few = snapshot()
            subscribe_until(per_worker)
            redis_client.config_resetstat()
            receive_everywhere("hello")
            receive_everywhere("all")
            scripts = redis_client.info("commandstats")["cmdstat_evalsha"]["calls"]
            crowd = snapshot()
        finally:
            for sock in sum(opened.values(), []):
                sock.close()
    redis_client.close()
    redis_server.close()
    with capsys.disabled():
        print(
            f"\nRedis connections per worker (total, of them pub/sub): 1 subscriber each "
            f"{sorted(few.values())}, {per_worker} subscribers each {sorted(crowd.values())}"
            f"\nRedis scripts for 2 publishes to {per_worker * 2} subscribers: {scripts}"
        )
    for counts in (few, crowd):
        for connections, pubsub in counts.values():
            assert pubsub == 1, "one listener connection per process"
            assert connections <= POOL_SIZE, "a bounded pool per process"
    # 2 publishes, and a read per worker per wake-up, not per subscriber
    # (some slack for wake-ups that raced a publish, and for presence).
    assert scripts - 2 <= 12, f"{scripts} scripts ran for {per_worker * 2} subscribers"


def publish_when_back(base_url: str, channel: str, data: Any) -> int:
    """Publish over HTTP, retrying while the app answers 503 (Redis away)."""

    def attempt() -> int | None:
        response = requests.post(
            f"{base_url}/push/publish/{channel}", json={"data": data}, headers=AUTH, timeout=10
        )
        if response.status_code == 503:
            return None
        assert response.status_code == 201, response.text
        message_id: int = response.json()["id"]
        return message_id

    found: int = wait_until(attempt, DEADLINE, f"Redis to take {data!r} again", interval=0.05)
    return found


def lose_data(redis_server: RedisServer, loss: str, lost: Callable[[], None]) -> None:
    """Make Redis lose what ``lost()`` publishes: it publishes after the
    last snapshot of a Redis restarted from it, or before Redis restarts
    empty or is flushed."""
    client = redis_server.client()
    if loss == "older-snapshot":
        client.save()
        lost()
        client.shutdown(nosave=True)
    elif loss == "restart-empty":
        lost()
        client.shutdown(nosave=True)
    else:
        lost()
        client.flushall()
    client.close()
    if loss != "flushall":
        assert redis_server.process is not None
        redis_server.process.wait(10)
        redis_server.start()


def payload_per_id(received: list[dict[str, Any]], meanings: dict[int, Any]) -> None:
    """Record what each id meant; fail if an id ever meant two payloads."""
    for item in received:
        if "id" in item and item["event"] != "gap":
            first = meanings.setdefault(item["id"], item["data"])
            assert first == item["data"], f"id {item['id']} meant {first!r}, now {item['data']!r}"


@pytest.mark.parametrize("loss", ["restart-empty", "older-snapshot", "flushall"])
def test_redis_losing_data_never_reissues_an_id_and_every_client_gets_a_gap(
    loss: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Subscribers of every transport on both workers follow a channel while
    Redis loses its newest messages. Ids published afterwards lie above every
    earlier id; each client gets a gap notice and then exactly the new
    messages; no id ever stands for two payloads; a client coming back later
    with an old id gets a gap too; and both workers answer ``since=0`` alike."""
    redis_server = RedisServer().start()
    channel = "lossy"
    meanings: dict[int, Any] = {}
    try:
        with start_cluster(redis_server, workers=2) as server:
            clients = [subscribe(p, t, channel, 0) for t in TRANSPORTS for p in pin_each(server, 2)]
            kept = [publish(server.url, channel, {"text": f"OLD-{n}"}) for n in (1, 2)]
            old = list(kept)

            def lost() -> None:
                """Published, received by every client, then lost by Redis."""
                old.extend(publish(server.url, channel, {"text": f"OLD-{n}"}) for n in (3, 4))
                for client in clients:
                    payload_per_id(client.take(4), meanings)

            lose_data(redis_server, loss, lost)
            assert old == list(range(old[0], old[0] + 4)), "consecutive while nothing is lost"
            lost_at = time.monotonic()
            if loss == "flushall":  # no publish needed: the workers notice by themselves
                for client in clients:
                    if isinstance(client, Subscriber):
                        gap = client.take(1)[0]
                        assert gap["event"] == "gap", gap
                        assert gap["data"]["requested"] == old[-1], gap
                        client.pending.insert(0, gap)
                noticed = time.monotonic() - lost_at
                with capsys.disabled():
                    print(f"\nFLUSHALL: every stream had its gap {noticed * 1000:.0f} ms later")
            new = [
                publish_when_back(server.url, channel, {"text": f"NEW-{n}"}) for n in range(1, 5)
            ]
            assert new[0] > old[-1], f"new ids {new} must lie above the old ones {old}"
            assert new == list(range(new[0], new[0] + 4))
            fresh = [
                {"id": i, "event": "message", "data": {"text": f"NEW-{n}"}}
                for n, i in enumerate(new, 1)
            ]
            for client in clients:
                received = client.take_through(new[-1])
                payload_per_id(received, meanings)
                assert received[0]["event"] == "gap", (client.transport, client.pid, received)
                assert received[0]["data"]["requested"] == old[-1], received[0]
                assert received[1:] == fresh, (client.transport, client.pid, received)
                client.close()
            for transport in TRANSPORTS:  # back later, with an old id
                received = take(items(server.url, transport, channel, old[1]), 5)
                payload_per_id(received, meanings)
                assert received[0]["event"] == "gap", (transport, received)
                assert received[1:] == fresh, (transport, received)
            for pinned in pin_each(server, 2):
                answer = pinned.get_json(f"/push/poll/{channel}?since=0")
                assert answer["messages"] == fresh, ("since=0", pinned.pid, answer)
                pinned.close()
    finally:
        redis_server.close()


def test_multiplexed_subscribers_on_two_workers_with_one_listener_each() -> None:
    """``GET /push/{sse,stream,poll}/mx-a,mx-b,mx-c`` on both of 2 workers:
    every message of every channel once, in order per channel, whether
    published in batches through either worker (``POST /push/publish``) or by
    ``publish_many`` from outside; and each worker still holds exactly one
    pub/sub connection, however many channels its subscribers wait on."""
    channels = ["mx-a", "mx-b", "mx-c"]
    rounds, per_transport = 10, 6
    redis_server = RedisServer().start()
    redis_client = redis_server.client()
    outside = RedisBroker.from_url(redis_server.url, max_messages=5000)
    try:
        with start_cluster(redis_server, workers=2) as server:
            pids = worker_pids(server, 2)
            zeros = [open_channel(server.url, channel) for channel in channels]
            start = ",".join(map(str, zeros))
            count = 2 * rounds * len(channels)
            subscriptions = [
                (transport, Cursor(channels, start))
                for transport in TRANSPORTS
                for _ in range(per_transport if transport in STREAMING else 2)
            ]
            with ThreadPoolExecutor(len(subscriptions)) as pool:
                received = [
                    pool.submit(take, multiplexed_items(server.url, t, channels, cursor), count)
                    for t, cursor in subscriptions
                ]

                def streams_per_worker() -> list[int]:
                    states = [worker_state(server, pid)["connections"] for pid in pids]
                    return [sum(state.get(t, 0) for t in STREAMING) for state in states]

                wait_until(
                    lambda: sum(streams_per_worker()) == 2 * per_transport, 15, "every stream"
                )
                assert min(streams_per_worker()) > 0, "streams on both workers"
                by_worker = redis_clients_by_worker(redis_client, redis_server.port, pids)
                for pid, entries in by_worker.items():
                    assert sum(map(is_pubsub, entries)) == 1, (pid, entries)
                for n in range(1, rounds + 1):
                    batch = {"messages": [{"channel": c, "data": {"n": n}} for c in channels]}
                    answer = requests.post(
                        f"{server.url}/push/publish", json=batch, headers=AUTH, timeout=10
                    )
                    assert answer.status_code == 201, answer.text
                    assert answer.json() == {"ids": [zero + n for zero in zeros]}
                for n in range(rounds + 1, 2 * rounds + 1):
                    ids = outside.publish_many([(c, {"n": n}, None) for c in channels])
                    assert ids == [zero + n for zero in zeros]
                results = [future.result(timeout=DEADLINE + 5) for future in received]
            for (transport, _), items_received in zip(subscriptions, results, strict=True):
                for channel, zero in zip(channels, zeros, strict=True):
                    mine = [item for item in items_received if item.get("channel") == channel]
                    assert [(m["id"], m["data"]["n"]) for m in mine] == [
                        (zero + n, n) for n in range(1, 2 * rounds + 1)
                    ], (transport, channel)
    finally:
        outside.close()
        redis_client.close()
        redis_server.close()
