"""What the streaming transports share: resume, gaps, heartbeats, encoding.

SSE and NDJSON streaming differ only in how a message, a gap notice and a
heartbeat look on the wire (a :class:`StreamFormat`); :func:`follow` is the
one loop that reads the numbered queues of a :class:`Subscription` for both,
whether it follows one channel or many.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from ..brokers.base import Batch, Broker, WaitResult
from ..errors import BrokerUnavailable
from ..message import Gap, Message
from ..nowait import WROTE_ALL, WROTE_NOTHING, WROTE_PART, WriteNowait
from ..stats import Stats

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

# ``(where it was found, the cursor as sent or None)``.
RequestedCursor = Callable[["WSGIEnvironment", dict[str, str]], "tuple[str, str | None]"]


@dataclass(slots=True)
class Subscription:
    """One connection's subscription, and how it is served.

    ``positions`` maps each channel, in the URL's order, to the last id the
    client has (or is about to have) from it. More than one channel makes it
    multiplexed: messages carry their channel, and the resume position is a
    cursor, one entry per channel. ``write_nowait``: the server's hook that
    writes a parked stream's heartbeats and news without waking it
    (:mod:`wsgi_push.nowait`), if it has one; ``unflushed``: the hub wrote a
    part of a chunk, whose rest goes out with the stream's next write.
    """

    broker: Broker
    positions: dict[str, int]
    heartbeat: float
    ending: Callable[[], bool]
    stats: Stats
    write_nowait: WriteNowait | None = None
    unflushed: bool = False

    @property
    def multiplexed(self) -> bool:
        return len(self.positions) > 1

    def cursor(self) -> str:
        return format_cursor(self.positions)


def format_cursor(positions: dict[str, int]) -> str:
    """A resume position as the contract writes it: ``"5"``, or ``"5,0,7"``."""
    return ",".join([str(position) for position in positions.values()])


@dataclass(frozen=True)
class StreamFormat:
    """How one streaming transport reads its resume position and writes
    things on the wire."""

    content_type: str
    encode_message: Callable[[Message], bytes]
    encode_gap: Callable[[Gap], bytes]
    # Multiplexed: a message with its channel (shared by every subscriber),
    # and a gap notice of one channel.
    encode_tagged_message: Callable[[Message], bytes]
    encode_tagged_gap: Callable[[str, Gap], bytes]
    heartbeat: bytes
    # Where the request asks to resume from, as sent (None: "only new").
    requested_cursor: RequestedCursor
    # The first bytes, sent at once so that the headers reach the client:
    # ``opening(retry_seconds, cursor)``; cursor None for a stream that ends
    # at once.
    opening: Callable[[float, str | None], bytes]
    # Multiplexed: what follows each message, made from the cursor after it
    # (SSE's ``id:``, so that a browser's own reconnect resumes every channel).
    cursor_record: Callable[[str], bytes] | None = None
    # Streams must reach the client as written: no caching, no proxy buffering.
    headers: tuple[tuple[str, str], ...] = (
        ("Cache-Control", "no-cache"),
        ("X-Accel-Buffering", "no"),
    )

    def encode_batch(self, batch: Batch) -> bytes:
        """One chunk for a batch of a single-channel subscription: the gap
        notice first, then each message (each encoded once and shared by
        every subscriber)."""
        encode = self.encode_message
        if batch.gap is None and len(batch.messages) == 1:
            return batch.messages[0].encoded(encode)  # the usual wake-up: share the bytes
        parts = [self.encode_gap(batch.gap)] if batch.gap is not None else []
        parts.extend(message.encoded(encode) for message in batch.messages)
        return b"".join(parts)

    def encode_tagged_batch(self, channel: str, batch: Batch, subscription: Subscription) -> bytes:
        """One chunk for a batch of one channel of a multiplexed subscription;
        moves the subscription's position in ``channel`` past it."""
        positions = subscription.positions
        cursor_record = self.cursor_record
        parts = []
        if batch.gap is not None:
            parts.append(self.encode_tagged_gap(channel, batch.gap))
            if not batch.messages and cursor_record is not None:
                # Nothing retained follows to move the client's cursor.
                positions[channel] = batch.last_id
                parts.append(cursor_record(subscription.cursor()))
        encode = self.encode_tagged_message
        for message in batch.messages:
            parts.append(message.encoded(encode))
            if cursor_record is not None:
                positions[channel] = message.id
                parts.append(cursor_record(subscription.cursor()))
        positions[channel] = batch.last_id
        return b"".join(parts)


def resolve_positions(
    broker: Broker, channels: tuple[str, ...], requested: list[int | None]
) -> dict[str, int]:
    """Where a subscriber starts in each channel: absent means "only new",
    resolved to the channel's last id now."""
    if len(channels) == 1:  # most subscriptions: no zip, no comprehension
        [channel], [position] = channels, requested
        return {channel: broker.last_id(channel) if position is None else position}
    return {
        channel: broker.last_id(channel) if position is None else position
        for channel, position in zip(channels, requested, strict=True)
    }


def follow(
    subscription: Subscription, stream_format: StreamFormat, opening: bytes
) -> Generator[bytes, None, None]:
    """Yield ``opening``, then every message after the subscription's
    positions as it is published, forever.

    A woken subscriber takes everything pending in one chunk. While idle it
    yields a heartbeat every ``heartbeat`` seconds: real bytes, because a
    vanished client only shows when a write fails (written for it while it
    stays parked, through the server's ``write_nowait`` if there is one,
    which also writes a single-channel stream's news from the hub).
    Stops once ``ending()``.
    While the broker is unavailable it keeps heartbeating and retries.
    """
    yield opening
    broker, positions, stats = subscription.broker, subscription.positions, subscription.stats
    channels = tuple(positions)
    multiplexed = len(channels) > 1
    [first_channel, *_] = channels
    heartbeat, ending = subscription.heartbeat, subscription.ending
    spot = broker.waiting_spot(heartbeat)
    write_nowait = subscription.write_nowait
    if write_nowait is not None:
        # Idle, the heartbeat goes out from the hub while this greenlet stays
        # parked; a wait ends on a timeout only when that write can't be done.
        spot.on_timeout = partial(_heartbeat_nowait, write_nowait, stream_format.heartbeat)
        if not multiplexed:
            spot.on_notify = partial(_news_nowait, subscription, stream_format, first_channel)
    woken_by: WaitResult | None = None  # None: read every channel
    try:
        while not ending():
            try:
                if multiplexed:
                    chunk = _read_multiplexed(subscription, stream_format, woken_by)
                else:  # the hot path of a fan-out, inline
                    batch = broker.read(first_channel, positions[first_channel])
                    chunk = b""
                    if batch:
                        positions[first_channel] = batch.last_id
                        stats.record(batch)
                        chunk = stream_format.encode_batch(batch)
            except BrokerUnavailable:
                # Keep the subscriber: heartbeat through the outage, read again after.
                # The pause is a broker wait, so ending connections cuts it short.
                broker.pause(channels, heartbeat, spot)
                yield stream_format.heartbeat
                woken_by = None
                continue
            if subscription.unflushed:
                # The rest of a chunk the hub wrote in part goes out first.
                subscription.unflushed = False
                chunk = chunk or stream_format.heartbeat
            if chunk:
                yield chunk
            # No second read after a chunk: wait() first compares each channel's
            # last id with ours, and returns at once if more came meanwhile.
            woken_by = broker.wait(positions, heartbeat, spot)
            if woken_by is WaitResult.TIMEOUT:
                yield stream_format.heartbeat
    finally:
        spot.close()


def _heartbeat_nowait(write_nowait: WriteNowait, heartbeat: bytes) -> bool:
    """A parked stream's ``on_timeout``: its heartbeat, written from the hub."""
    return write_nowait(heartbeat) == WROTE_ALL


def _news_nowait(subscription: Subscription, stream_format: StreamFormat, channel: str) -> bool:
    """A parked single-channel stream's ``on_notify``: the news of a publish,
    read and written from the hub as the stream's greenlet would (True), or
    False to wake that greenlet instead: the broker can't read without I/O,
    the socket takes nothing now, or the connection is ending."""
    if subscription.ending():
        return False
    positions = subscription.positions
    batch = subscription.broker.read_nowait(channel, positions[channel])
    if batch is None:
        return False
    if not batch.messages and batch.gap is None:
        return True  # nothing after all: stay parked
    written = subscription.write_nowait(stream_format.encode_batch(batch))  # type: ignore[misc]
    if written == WROTE_NOTHING:
        return False
    positions[channel] = batch.last_id
    subscription.stats.record(batch)
    if written == WROTE_PART:
        subscription.unflushed = True
        return False
    return True


def _read_multiplexed(
    subscription: Subscription, stream_format: StreamFormat, woken_by: WaitResult | None
) -> bytes:
    """Read the channels that may have news after a wait ended by
    ``woken_by`` (every channel at first and after a wake); encode what came
    and move the positions past it."""
    broker, positions = subscription.broker, subscription.positions
    channels: Iterable[str] = positions
    if woken_by is WaitResult.MESSAGE or woken_by is WaitResult.TIMEOUT:
        # Only the channels with news, or that the broker can't tell of.
        channels = [channel for channel in positions if broker.behind(channel, positions[channel])]
    # Every read before any position moves: an outage halfway loses nothing.
    batches = [(channel, broker.read(channel, positions[channel])) for channel in channels]
    parts = []
    for channel, batch in batches:
        if batch:
            subscription.stats.record(batch)
            parts.append(stream_format.encode_tagged_batch(channel, batch, subscription))
    return b"".join(parts)
