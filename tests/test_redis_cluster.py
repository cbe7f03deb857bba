"""Many processes on one Redis: ``gunicorn -k gevent -w N`` serving the test
app on a real redis-server, real HTTP clients on loopback."""

from __future__ import annotations

import codecs
import json
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from tests.support.clients import AUTH, SSEParser, items, publish, take
from tests.support.redis_server import RedisServer
from tests.support.servers import ROOT, ServerProcess, free_port, gunicorn_server, wait_until
from wsgi_push import RedisBroker

HEARTBEAT = 0.5
STREAMING = ("sse", "stream")


def cluster_env(redis_server: RedisServer) -> dict[str, str]:
    return {
        "PUSH_TEST_REDIS_URL": redis_server.url,
        "PUSH_TEST_HEARTBEAT": str(HEARTBEAT),
        "PUSH_TEST_POLL_TIMEOUT": "2",
        "PUSH_TEST_MAX_MESSAGES": "5000",
    }


def start_cluster(
    redis_server: RedisServer, workers: int, port: int | None = None
) -> ServerProcess:
    """gunicorn with ``workers`` gevent workers, returned once every one answers."""
    server = gunicorn_server(port or free_port(), workers=workers, **cluster_env(redis_server))
    seen: set[int] = set()

    def all_workers_answer() -> bool:
        seen.add(requests.get(server.url + "/_test/state", timeout=5).json()["pid"])
        return len(seen) == workers

    wait_until(all_workers_answer, 30, f"{workers} workers to answer")
    return server


@pytest.fixture(scope="module")
def cluster(redis_server: RedisServer) -> Iterator[ServerProcess]:
    with start_cluster(redis_server, workers=3) as server:
        yield server


def pinned_session(
    server: ServerProcess, accept: Callable[[int], bool] = lambda pid: True
) -> tuple[requests.Session, int]:
    """A keep-alive session whose connection landed on a worker ``accept`` likes."""

    def attempt() -> tuple[requests.Session, int] | None:
        session = requests.Session()
        pid: int = session.get(server.url + "/_test/state", timeout=5).json()["pid"]
        if accept(pid):
            return session, pid
        session.close()
        return None

    found: tuple[requests.Session, int] = wait_until(attempt, 30, "a connection to that worker")
    return found


class Subscriber:
    """One SSE or NDJSON stream read incrementally; heartbeats are visible."""

    def __init__(
        self, session: requests.Session, base_url: str, transport: str, channel: str, after: int
    ) -> None:
        self.transport = transport
        if transport == "sse":
            url, headers = f"{base_url}/push/sse/{channel}", {"Last-Event-ID": str(after)}
        else:
            url, headers = f"{base_url}/push/stream/{channel}?since={after}", {}
        self.response = session.get(url, headers=headers, stream=True, timeout=(5, 10))
        assert self.response.status_code == 200, self.response.text
        self.chunks = self.response.iter_content(chunk_size=None)
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.parser = SSEParser()
        self.buffer = ""
        self.pending: list[dict[str, Any]] = []

    def _items(self, chunk: bytes) -> list[dict[str, Any]]:
        text = self.decoder.decode(chunk)
        if self.transport == "sse":
            return [
                {
                    "id": None if e.id is None else int(e.id),
                    "event": e.event,
                    "data": json.loads(e.data),
                }
                for e in self.parser.feed(text)
            ]
        *lines, self.buffer = (self.buffer + text).split("\n")
        return [json.loads(line) for line in lines if line.strip()]

    def take(self, count: int) -> list[dict[str, Any]]:
        while len(self.pending) < count:
            self.pending.extend(self._items(next(self.chunks)))
        taken, self.pending = self.pending[:count], self.pending[count:]
        return taken

    def heartbeat(self) -> None:
        """Wait for the next chunk and check it carries no message."""
        assert self._items(next(self.chunks)) == []

    def close(self) -> None:
        self.response.close()


def ids(taken: list[dict[str, Any]]) -> list[int]:
    return [item["id"] for item in taken]


def expected(first: int, last: int) -> list[dict[str, Any]]:
    return [{"id": n, "event": "message", "data": {"n": n}} for n in range(first, last + 1)]


def test_subscribers_on_every_worker_get_every_message_in_order(cluster: ServerProcess) -> None:
    channel = "everyone"
    subscribers = []
    for transport in STREAMING:
        # One subscriber of each streaming transport on each of the 3 workers.
        placed: set[int] = set()
        for _ in range(3):
            session, pid = pinned_session(cluster, lambda pid, placed=placed: pid not in placed)
            placed.add(pid)
            subscribers.append((Subscriber(session, cluster.url, transport, channel, 0), pid))
    pollers = [items(cluster.url, "poll", channel, 0) for _ in range(3)]
    publisher, _ = pinned_session(cluster)
    for n in range(1, 31):
        response = publisher.post(
            f"{cluster.url}/push/publish/{channel}", json={"data": {"n": n}}, headers=AUTH
        )
        assert response.json() == {"id": n}
    for subscriber, pid in subscribers:
        assert subscriber.take(30) == expected(1, 30), (subscriber.transport, pid)
        subscriber.close()
    for poller in pollers:
        assert take(poller, 30) == expected(1, 30)


def test_publishers_in_three_processes_get_ids_1_to_3000(
    cluster: ServerProcess, redis_server: RedisServer
) -> None:
    channel = "race"
    session, _ = pinned_session(cluster)
    subscriber = Subscriber(session, cluster.url, "stream", channel, 0)
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
    assert sorted(sum(results, [])) == list(range(1, 3001))
    received = subscriber.take(3000)
    subscriber.close()
    assert ids(received) == list(range(1, 3001))
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


@pytest.mark.parametrize("transport", STREAMING)
def test_subscriber_moved_to_another_worker_resumes_from_its_last_id(
    cluster: ServerProcess, transport: str
) -> None:
    channel = f"moving-{transport}"
    session, first_pid = pinned_session(cluster)
    subscriber = Subscriber(session, cluster.url, transport, channel, 0)
    for n in range(1, 4):
        publish(cluster.url, channel, {"n": n})
    assert subscriber.take(3) == expected(1, 3)
    subscriber.close()
    for n in range(4, 7):  # while the client is away
        publish(cluster.url, channel, {"n": n})
    session, second_pid = pinned_session(cluster, lambda pid: pid != first_pid)
    resumed = Subscriber(session, cluster.url, transport, channel, 3)
    assert resumed.take(3) == expected(4, 6)
    publish(cluster.url, channel, {"n": 7})
    assert resumed.take(1) == expected(7, 7)
    resumed.close()


def test_publish_to_receive_latency_across_processes(cluster: ServerProcess) -> None:
    """Publish through one worker, receive over SSE on another."""
    channel = "latency"
    subscriber_session, subscriber_pid = pinned_session(cluster)
    publisher, _ = pinned_session(cluster, lambda pid: pid != subscriber_pid)
    subscriber = Subscriber(subscriber_session, cluster.url, "sse", channel, 0)
    latencies = []
    for n in range(1, 301):
        started = time.perf_counter()
        publisher.post(
            f"{cluster.url}/push/publish/{channel}", json={"data": {"n": n}}, headers=AUTH
        )
        assert subscriber.take(1) == expected(n, n)
        latencies.append(time.perf_counter() - started)
    subscriber.close()
    cuts = statistics.quantiles(latencies, n=100)
    print(f"\npublish->receive across processes: p50 {cuts[49] * 1000:.1f} ms, "
          f"p99 {cuts[98] * 1000:.1f} ms over {len(latencies)} messages")  # fmt: skip
    assert cuts[98] < 1.0


def test_whole_app_restarted_clients_resume_and_ids_continue(redis_server: RedisServer) -> None:
    channel = "restart"
    port = free_port()
    with start_cluster(redis_server, workers=2, port=port) as server:
        for n in range(1, 4):
            publish(server.url, channel, {"n": n})
        assert take(items(server.url, "sse", channel, 0), 3) == expected(1, 3)
    # The app is down; a script publishes the way docs/redis.md shows.
    outside = RedisBroker.from_url(redis_server.url)
    assert [outside.publish(channel, {"n": n}) for n in (4, 5)] == [4, 5]
    outside.close()
    with start_cluster(redis_server, workers=2, port=port) as server:
        for transport in ("sse", "stream", "poll"):
            source = items(server.url, transport, channel, 3)
            assert take(source, 2) == expected(4, 5), transport
        assert publish(server.url, channel, {"n": 6}) == 6
        assert take(items(server.url, "poll", channel, 3), 3) == expected(4, 6)


def test_redis_restart_keeps_subscribers_and_loses_nothing_it_kept() -> None:
    redis_server = RedisServer(persistent=True).start()
    try:
        with start_cluster(redis_server, workers=2) as server:
            channel = "outage"
            subscribers = []
            for transport in STREAMING:
                for _ in range(2):
                    session, _ = pinned_session(server)
                    subscribers.append(Subscriber(session, server.url, transport, channel, 0))
            for n in range(1, 4):
                publish(server.url, channel, {"n": n})
            for subscriber in subscribers:
                assert subscriber.take(3) == expected(1, 3)

            redis_server.stop()
            refused = requests.post(
                f"{server.url}/push/publish/{channel}", json={"data": 0}, headers=AUTH, timeout=10
            )
            assert refused.status_code == 503 and refused.headers["Retry-After"]
            assert "error" in refused.json()
            for subscriber in subscribers:
                subscriber.heartbeat()  # still connected, still heartbeating

            redis_server.start()
            for n in range(4, 7):
                assert publish(server.url, channel, {"n": n}) == n
            for subscriber in subscribers:
                assert subscriber.take(3) == expected(4, 6)
                subscriber.close()
            assert take(items(server.url, "poll", channel, 0), 6) == expected(1, 6)
    finally:
        redis_server.close()


def test_redis_connections_depend_on_processes_not_subscribers() -> None:
    channel = "crowd"
    redis_server = RedisServer().start()  # its own, so that only this app's clients count
    redis_client = redis_server.client()
    with start_cluster(redis_server, workers=2) as server:
        before = len(redis_client.client_list())
        port = int(server.url.rsplit(":", 1)[1])
        sockets = []
        try:
            request = f"GET /push/sse/{channel}?last_event_id=0 HTTP/1.1\r\nHost: t\r\n\r\n"
            for _ in range(1000):
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                sock.sendall(request.encode())
                sockets.append(sock)
            state_url = f"{server.url}/_test/state?{channel}"
            wait_until(
                lambda: requests.get(state_url, timeout=5).json()["subscribers"] == 1000,
                60,
                "1,000 subscribers across both workers",
            )
            connections = len(redis_client.client_list()) - 1  # less this client
            print(f"\nRedis connections: {connections} for 2 processes and 1,000 subscribers "
                  f"({before - 1} before any subscriber)")  # fmt: skip
            assert connections <= 2 * 6, "a handful per process, not one per subscriber"
            redis_client.config_resetstat()
            for text in ("hello", "all"):
                publish(server.url, channel, text)
            for sock in sockets:
                received = b""
                while b"data: all\n" not in received:
                    chunk = sock.recv(65536)
                    assert chunk, "a subscriber was disconnected"
                    received += chunk
                assert b"data: hello\n" in received
            scripts = redis_client.info("commandstats")["cmdstat_evalsha"]["calls"]
            print(f"Redis scripts for 2 publishes to 1,000 subscribers: {scripts}")
            # 2 publishes, and a read per worker per wake-up, not per subscriber
            # (some slack for wake-ups that raced a publish, and for presence).
            assert scripts - 2 <= 12, f"{scripts} scripts ran for 1,000 subscribers"
        finally:
            for sock in sockets:
                sock.close()
    redis_client.close()
    redis_server.close()
