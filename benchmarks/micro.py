"""In-process micro-benchmark of the fan-out hot path.

``python -m benchmarks.micro [--subs 1000] [--messages 200] [--repeat 7] [--idle | --sockets]``

N greenlets run the real ``follow`` loop against a ``MemoryBroker`` and
drop what they yield; a publisher greenlet publishes one message at a time
and lets every subscriber take it. Prints the best-of-``repeat`` CPU time
per delivery (``--idle``: per heartbeat of idle subscribers with 1.5 s
heartbeats, started spread over 1.5 s: 667 heartbeats a second at 1,000):
on a shared, noisy machine this isolates the cost of the
broker/transport code from the network stack and from other processes.

``--sockets``: the same publishes through the real server (``make_server``)
to SSE streams on loopback, read by clients in this process between
publishes, so that no other process is woken: the hub's path per delivery
(``send(2)`` included), next to a bare loop of ``send()`` calls with the
same bytes on as many loopback connections. The difference is the Python
around each delivery.
"""

from __future__ import annotations

import argparse
import socket
import time
from collections.abc import Callable

import gevent

from wsgi_push import MemoryBroker, PushMiddleware, make_server
from wsgi_push.server import frame_chunk
from wsgi_push.stats import Stats
from wsgi_push.transports.base import Subscription, follow
from wsgi_push.transports.sse import SSE_FORMAT


def one_run(subs: int, messages: int) -> float:
    broker = MemoryBroker()
    ended = False

    def subscriber() -> None:
        subscription = Subscription(broker, {"c": 0}, 30.0, lambda: ended, Stats())
        for _chunk in follow(subscription, SSE_FORMAT, b""):
            pass

    greenlets = [gevent.spawn(subscriber) for _ in range(subs)]
    gevent.sleep(0)
    gevent.sleep(0)
    start = time.process_time()
    for number in range(messages):
        broker.publish("c", {"n": number})
        gevent.sleep(0)  # every woken subscriber runs once
    elapsed = time.process_time() - start
    ended = True
    broker.wake_all()
    gevent.joinall(greenlets, timeout=5)
    return elapsed / (subs * messages)


def idle_run(subs: int, heartbeat: float, seconds: float) -> float:
    """CPU time per heartbeat of ``subs`` idle followers that started spread
    over one heartbeat interval, as real connections do (started together,
    their heartbeats would share every wake-up of the process and hide what
    a wake-up costs)."""
    broker = MemoryBroker()
    ended = False
    beats = 0

    def subscriber(delay: float) -> None:
        nonlocal beats
        gevent.sleep(delay)
        subscription = Subscription(broker, {"c": 0}, heartbeat, lambda: ended, Stats())
        stream = follow(subscription, SSE_FORMAT, b"")
        next(stream)  # the opening
        for _chunk in stream:
            beats += 1

    greenlets = [gevent.spawn(subscriber, heartbeat * n / subs) for n in range(subs)]
    gevent.sleep(heartbeat * 1.2)
    start, beats_before = time.process_time(), beats
    gevent.sleep(seconds)
    elapsed, counted = time.process_time() - start, beats - beats_before
    ended = True
    broker.wake_all()
    gevent.joinall(greenlets, timeout=5)
    return elapsed / max(counted, 1)


def _drain(clients: list[socket.socket]) -> None:
    for client in clients:
        try:
            while client.recv(1 << 20):
                pass
        except BlockingIOError:
            pass


def _timed_rounds(
    rounds: int, one_round: Callable[[], object], readers: list[socket.socket]
) -> float:
    """CPU time of ``rounds`` calls of ``one_round``; ``readers`` are drained
    every 20 rounds, untimed, so that no socket fills up."""
    total = 0.0
    for number in range(rounds):
        start = time.process_time()
        one_round()
        total += time.process_time() - start
        if number % 20 == 0:
            _drain(readers)
    return total


def _loopback_pair(listener: socket.socket) -> tuple[socket.socket, socket.socket]:
    client = socket.create_connection(listener.getsockname())
    accepted, _ = listener.accept()
    accepted.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as the server's
    return accepted, client


def sockets_run(subs: int, messages: int) -> tuple[float, float]:
    """CPU time per delivery through the server's hub path, and per bare
    ``send()`` of the same bytes: ``(hub, bare)``."""
    broker = MemoryBroker()
    server = make_server(PushMiddleware(lambda e, s: [], broker=broker), port=0, access_log=False)
    server.start()
    clients = []
    for _ in range(subs):
        client = socket.create_connection(("127.0.0.1", server.server_port))
        client.sendall(b"GET /push/sse/c HTTP/1.1\r\nHost: x\r\n\r\n")
        clients.append(client)
    deadline = time.monotonic() + 30
    while broker.subscriber_count("c") < subs:  # every stream open
        assert time.monotonic() < deadline, "the streams did not open"
        gevent.sleep(0.01)
    for client in clients:
        client.setblocking(False)
    _drain(clients)
    payload = {"n": 1, "text": "x" * 40}

    def publish() -> None:
        broker.publish("c", payload)
        gevent.sleep(0)  # the hub writes every stream's news

    hub = _timed_rounds(messages, publish, clients)
    # What the server wrote for each delivery: one chunk with the SSE event.
    framed = frame_chunk(SSE_FORMAT.encode_message(broker.read("c", 0).messages[-1]))
    for client in clients:
        client.close()
    server.stop(timeout=1)
    with socket.create_server(("127.0.0.1", 0), backlog=subs) as listener:
        pairs = [_loopback_pair(listener) for _ in range(subs)]
    senders = [sender for sender, _ in pairs]
    readers = [reader for _, reader in pairs]
    for reader in readers:
        reader.setblocking(False)

    def send_all() -> None:
        for sender in senders:
            sender.send(framed)

    bare = _timed_rounds(messages, send_all, readers)
    for sender, reader in pairs:
        sender.close()
        reader.close()
    return hub / (subs * messages), bare / (subs * messages)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.micro", description=__doc__)
    parser.add_argument("--subs", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--idle", action="store_true", help="measure heartbeats instead")
    parser.add_argument(
        "--sockets", action="store_true", help="the server's hub path on loopback, and bare sends"
    )
    config = parser.parse_args(argv)
    if config.sockets:
        streams = min(config.subs, 1000)
        runs = [sockets_run(streams, config.messages * 5) for _ in range(3)]
        hub, bare = min(run[0] for run in runs), min(run[1] for run in runs)
        print(
            f"{hub * 1e6:.2f} us CPU per delivery through the server's hub path, "
            f"{bare * 1e6:.2f} us per bare send(): {(hub - bare) * 1e6:.2f} us of Python "
            f"({streams} streams)"
        )
        return
    if config.idle:
        # 1,000 followers with 1.5 s heartbeats: the rate of 10,000 with 15 s.
        best = min(idle_run(config.subs, 1.5, 3.0) for _ in range(config.repeat))
        print(f"{best * 1e6:.3f} us CPU per heartbeat ({config.subs} idle subscribers)")
        return
    best = min(one_run(config.subs, config.messages) for _ in range(config.repeat))
    print(f"{best * 1e6:.3f} us CPU per delivery ({config.subs} subscribers)")


if __name__ == "__main__":
    main()
