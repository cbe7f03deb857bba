"""The loop both streaming transports share (``transports/base.py``), in-process."""

from __future__ import annotations

import gevent
import pytest

from wsgi_push import BrokerUnavailable, MemoryBroker
from wsgi_push.brokers.base import Batch
from wsgi_push.nowait import WROTE_ALL, WROTE_NOTHING, WROTE_PART
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


def _parked_stream(
    broker: MemoryBroker, heartbeat: float, written: int
) -> tuple[Subscription, list[bytes], list[bytes], gevent.Greenlet]:
    """A stream of channel "news" parked in its greenlet, with a stub
    write_nowait that records what the hub gives it and answers ``written``:
    the subscription, the hub's writes, what the greenlet yielded, the greenlet."""
    hub_writes: list[bytes] = []
    yielded: list[bytes] = []

    def write_nowait(data: bytes) -> int:
        hub_writes.append(data)
        return written

    subscription = Subscription(
        broker, {"news": 0}, heartbeat, lambda: False, Stats(), write_nowait
    )
    stream = follow(subscription, NDJSON_FORMAT, b"")
    assert next(stream) == b""  # the opening
    greenlet = gevent.spawn(lambda: yielded.extend(stream))
    gevent.sleep(0)  # it parks
    return subscription, hub_writes, yielded, greenlet


@pytest.mark.parametrize(
    ("written", "greenlet_writes"),
    [
        (WROTE_ALL, []),  # written from the hub: the stream's greenlet stays parked
        (WROTE_NOTHING, ["message"]),  # refused: the greenlet writes the message itself
        (WROTE_PART, ["heartbeat"]),  # the rest went first with the greenlet's next write
    ],
)
def test_news_is_written_from_the_hub_or_by_the_stream_once(
    written: int, greenlet_writes: list[str]
) -> None:
    """A publish hands a parked single-channel stream's news to the server's
    write_nowait hook; whatever it answers, the message goes out exactly
    once and the stream's position moves past it."""
    broker = MemoryBroker()
    subscription, hub_writes, yielded, greenlet = _parked_stream(broker, 30.0, written)
    broker.publish("news", {"n": 1})
    gevent.idle()
    message = NDJSON_FORMAT.encode_batch(broker.read("news", 0))
    assert hub_writes == [message]
    assert yielded == [
        {"message": message, "heartbeat": HEARTBEAT}[kind] for kind in greenlet_writes
    ]
    assert subscription.positions == {"news": 1}
    assert subscription.stats.deliveries == 1
    assert broker.signals.has_waiters("news")  # parked under the channel again
    greenlet.kill()


def test_news_written_from_the_hub_puts_off_the_next_heartbeat() -> None:
    """A heartbeat is for a stream with nothing to say: news written from the
    hub every 0.1 s keeps a stream with 0.5 s heartbeats free of them, as
    news that woke its greenlet would."""
    broker = MemoryBroker()
    _, hub_writes, _, greenlet = _parked_stream(broker, 0.5, WROTE_ALL)
    for number in range(12):  # 1.2 s: time passing, not a wait for an event
        broker.publish("news", number)
        gevent.sleep(0.1)
    greenlet.kill()
    assert len(hub_writes) == 12 and HEARTBEAT not in hub_writes
