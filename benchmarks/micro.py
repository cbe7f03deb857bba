"""In-process micro-benchmark of the fan-out hot path (no sockets).

``python -m benchmarks.micro [--subs 1000] [--messages 200] [--repeat 7] [--idle]``

N greenlets run the real ``follow`` loop against a ``MemoryBroker`` and
drop what they yield; a publisher greenlet publishes one message at a time
and lets every subscriber take it. Prints the best-of-``repeat`` CPU time
per delivery (``--idle``: per heartbeat of idle subscribers with 1.5 s
heartbeats, started spread over 1.5 s: 667 heartbeats a second at 1,000):
on a shared, noisy machine this isolates the cost of the
broker/transport code from the network stack and from other processes.
"""

from __future__ import annotations

import argparse
import time

import gevent

from wsgi_push import MemoryBroker
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.micro", description=__doc__)
    parser.add_argument("--subs", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--idle", action="store_true", help="measure heartbeats instead")
    config = parser.parse_args(argv)
    if config.idle:
        # 1,000 followers with 1.5 s heartbeats: the rate of 10,000 with 15 s.
        best = min(idle_run(config.subs, 1.5, 3.0) for _ in range(config.repeat))
        print(f"{best * 1e6:.3f} us CPU per heartbeat ({config.subs} idle subscribers)")
        return
    best = min(one_run(config.subs, config.messages) for _ in range(config.repeat))
    print(f"{best * 1e6:.3f} us CPU per delivery ({config.subs} subscribers)")


if __name__ == "__main__":
    main()
