"""The loop both streaming transports share (``transports/base.py``), in-process."""

from __future__ import annotations

import gevent

from wsgi_push import BrokerUnavailable, MemoryBroker
from wsgi_push.brokers.base import Batch
from wsgi_push.stats import Stats
from wsgi_push.transports.base import Subscription, follow
from wsgi_push.transports.stream import HEARTBEAT, NDJSON_FORMAT


class DownBroker(MemoryBroker):
    def read(self, channel: str, after: int, limit: int | None = None) -> Batch:
        raise BrokerUnavailable("broker down")


def test_an_outage_pause_ends_when_connections_are_ended() -> None:
    """A stream heartbeats through a broker outage, but ending connections
    (a graceful shutdown) must not wait out a whole heartbeat interval."""
    broker, ended = DownBroker(), [False]
    chunks: list[bytes] = []

    def subscriber() -> None:
        subscription = Subscription(broker, {"news": 0}, 30.0, lambda: ended[0], Stats())
        stream = follow(subscription, NDJSON_FORMAT, b"")
        assert next(stream) == b""  # the opening
        chunks.extend(stream)

    greenlet = gevent.spawn(subscriber)
    gevent.sleep(0)  # it reads, fails and pauses
    assert broker.signals.has_waiters("news")
    ended[0] = True
    broker.wake_all()
    greenlet.join(timeout=2)
    assert greenlet.dead and greenlet.successful()
    assert chunks == [HEARTBEAT]
