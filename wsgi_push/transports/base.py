"""What the streaming transports share: resume, gaps, heartbeats, encoding.

SSE and NDJSON streaming differ only in how a message, a gap notice and a
heartbeat look on the wire (a :class:`StreamFormat`); :func:`follow` is the
one loop that reads the numbered queue for both.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..brokers.base import Batch, Broker
from ..brokers.signals import Spot
from ..errors import BrokerUnavailable
from ..message import Gap, Message
from ..stats import Stats

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

RequestedPosition = Callable[["WSGIEnvironment", dict[str, str]], "int | None"]


@dataclass(frozen=True)
class StreamFormat:
    """How one streaming transport reads its resume position and writes
    things on the wire."""

    content_type: str
    encode_message: Callable[[Message], bytes]
    encode_gap: Callable[[Gap], bytes]
    heartbeat: bytes
    # Where the request asks to resume from (None: "only what comes next").
    requested_position: RequestedPosition
    # The first bytes, sent at once so that the headers reach the client:
    # ``opening(retry_seconds, position)``; position None for a stream that
    # ends at once.
    opening: Callable[[float, int | None], bytes]
    # Streams must reach the client as written: no caching, no proxy buffering.
    headers: tuple[tuple[str, str], ...] = (
        ("Cache-Control", "no-cache"),
        ("X-Accel-Buffering", "no"),
    )

    def encode_batch(self, batch: Batch) -> bytes:
        """One chunk for a batch: the gap notice first, then each message
        (each encoded once and shared by every subscriber)."""
        encode = self.encode_message
        if batch.gap is None and len(batch.messages) == 1:
            return batch.messages[0].encoded(encode)  # the usual wake-up: share the bytes
        parts = [self.encode_gap(batch.gap)] if batch.gap is not None else []
        parts.extend(message.encoded(encode) for message in batch.messages)
        return b"".join(parts)


def resume_position(broker: Broker, channel: str, requested: int | None) -> int:
    """Where a subscriber starts: absent means "only what comes next"."""
    return broker.last_id(channel) if requested is None else requested


def follow(
    broker: Broker,
    channel: str,
    position: int,
    stream_format: StreamFormat,
    heartbeat: float,
    ending: Callable[[], bool],
    stats: Stats,
    opening: bytes,
) -> Generator[bytes, None, None]:
    """Yield ``opening``, then every message after ``position`` as it is
    published, forever.

    A woken subscriber takes everything pending in one chunk. While idle it
    yields a heartbeat every ``heartbeat`` seconds: real bytes, because a
    vanished client only shows when a write fails. Stops once ``ending()``.
    While the broker is unavailable it keeps heartbeating and retries.
    """
    yield opening
    spot = Spot(heartbeat)
    try:
        while not ending():
            try:
                batch = broker.read(channel, position)
            except BrokerUnavailable:
                # Keep the subscriber: heartbeat through the outage, read again after.
                # The pause is a broker wait, so ending connections cuts it short.
                broker.signals.wait(channel, ending, heartbeat, spot)
                yield stream_format.heartbeat
                continue
            if batch:
                position = batch.last_id
                stats.record(batch)
                yield stream_format.encode_batch(batch)
            # No second read after a batch: wait() first compares the channel's
            # last id with ours, and returns at once if more came meanwhile.
            if not broker.wait(channel, position, heartbeat, spot):
                yield stream_format.heartbeat
    finally:
        spot.close()
