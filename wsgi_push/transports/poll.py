"""Long polling (COMET): hold the request until a message exists, then answer
with everything available at once."""

from __future__ import annotations

import heapq
from itertools import islice
from operator import attrgetter
from typing import Any

from ..brokers.base import Batch, Broker, WaitResult
from ..disconnect import OnDisconnect
from ..message import Message, dumps
from .base import format_cursor

_published_at = attrgetter("published_at")


def long_poll(
    broker: Broker,
    positions: dict[str, int],
    timeout: float,
    limit: int,
    on_disconnect: OnDisconnect | None = None,
) -> list[tuple[str, Batch]]:
    """Read every channel after its position; if nothing is anywhere, wait up
    to ``timeout`` once and read again.

    A wake-up without a message (the server is ending connections) answers
    early with empty batches; the client simply polls again. With the
    server's ``on_disconnect`` hook (see :mod:`wsgi_push.disconnect`), a
    client that closes wakes the wait at once, so its slot is freed.
    """
    batches = _read_all(broker, positions, limit)
    if timeout <= 0 or any(batch for _, batch in batches):
        return batches
    if on_disconnect is None:
        broker.wait(positions, timeout)
        return _read_all(broker, positions, limit)
    spot = broker.waiting_spot(timeout)
    cancel = on_disconnect(spot.wake)
    try:
        if broker.wait(positions, timeout, spot) is WaitResult.WOKEN:
            return batches  # ending, or the client left: answer what we have (nothing)
    finally:
        cancel()
        spot.close()
    return _read_all(broker, positions, limit)


def _read_all(broker: Broker, positions: dict[str, int], limit: int) -> list[tuple[str, Batch]]:
    return [(channel, broker.read(channel, after, limit)) for channel, after in positions.items()]


# The last answer encoded, with the batch and channel it was made of.
_last_answer: tuple[Batch, str, bytes] | None = None


def encode_poll_body(channel: str, batch: Batch) -> bytes:
    """The contract's long-poll answer, ``{"channel", "messages", "last_id", "gap"}``,
    built from each message's cached JSON so fan-out encodes a message once.

    The long polls one publish wakes all read the same batch object (a
    broker shares it, and batches are read-only): the last answer is kept
    and the same bytes go to each of them.
    """
    global _last_answer
    last = _last_answer  # one read: another thread may replace it
    if last is not None and last[0] is batch and last[1] == channel:
        return last[2]
    messages = b",".join([message.json_bytes() for message in batch.messages])
    gap = b"null" if batch.gap is None else dumps(batch.gap.to_dict()).encode()
    body = b'{"channel":%s,"messages":[%s],"last_id":%d,"gap":%s}' % (
        dumps(channel).encode(),
        messages,
        batch.last_id,
        gap,
    )
    _last_answer = (batch, channel, body)
    return body


def select_multiplexed(
    batches: list[tuple[str, Batch]], positions: dict[str, int], limit: int
) -> tuple[list[Message], list[dict[str, Any]]]:
    """What a multiplexed answer carries: at most ``limit`` messages of all
    channels together, in the order they were published, and the gap
    notices that go with them. Each channel's position moves only past what
    is returned (a gap goes out with the first of its channel's messages);
    ``positions`` is updated to the cursor to send."""
    with_messages = [batch.messages for _, batch in batches if batch.messages]
    if len(with_messages) > 1:
        returned = list(islice(heapq.merge(*with_messages, key=_published_at), limit))
    else:  # news in one channel at most (the usual wake-up): nothing to merge
        returned = with_messages[0][:limit] if with_messages else []
    returned_last = {message.channel: message.id for message in returned}
    gaps = []
    for channel, batch in batches:
        if channel in returned_last:
            positions[channel] = returned_last[channel]
        elif batch.messages or batch.gap is None:
            continue  # nothing of it fits this time: its position stays
        else:
            positions[channel] = batch.last_id  # a gap with nothing retained
        if batch.gap is not None:
            gaps.append(batch.gap.tagged_dict(channel))
    return returned, gaps


def encode_multiplexed_poll_body(
    positions: dict[str, int], messages: list[Message], gaps: list[dict[str, Any]]
) -> bytes:
    """The multiplexed answer, ``{"channels", "messages", "cursor", "gaps"}``."""
    return b'{"channels":%s,"messages":[%s],"cursor":"%s","gaps":%s}' % (
        dumps(list(positions)).encode(),
        b",".join(message.tagged_json_bytes() for message in messages),
        format_cursor(positions).encode("ascii"),
        dumps(gaps).encode(),
    )
