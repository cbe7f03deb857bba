"""Long polling (COMET): hold the request until a message exists, then answer
with everything available at once."""

from __future__ import annotations

from functools import partial

from gevent import getcurrent

from ..brokers.base import Batch, Broker
from ..disconnect import OnDisconnect
from ..message import dumps


def encode_poll_body(channel: str, batch: Batch) -> bytes:
    """The contract's long-poll answer, ``{"channel", "messages", "last_id", "gap"}``,
    built from each message's cached JSON so fan-out encodes a message once."""
    messages = b",".join(message.json_bytes() for message in batch.messages)
    gap = b"null" if batch.gap is None else dumps(batch.gap.to_dict()).encode()
    return b'{"channel":%s,"messages":[%s],"last_id":%d,"gap":%s}' % (
        dumps(channel).encode(),
        messages,
        batch.last_id,
        gap,
    )


def long_poll(
    broker: Broker,
    channel: str,
    position: int,
    timeout: float,
    limit: int,
    on_disconnect: OnDisconnect | None = None,
) -> Batch:
    """Read after ``position``; if nothing is there, wait up to ``timeout`` once.

    A wake-up without a message (the server is ending connections) answers
    early with an empty batch; the client simply polls again. With the
    server's ``on_disconnect`` hook, a client that closes ends the wait at once.
    """
    batch = broker.read(channel, position, limit)
    if batch or timeout <= 0:
        return batch
    if on_disconnect is None:
        broker.wait(channel, position, timeout)
    else:
        gone = ClientGone()
        cancel = on_disconnect(partial(getcurrent().throw, gone))
        try:
            broker.wait(channel, position, timeout)
        except ClientGone as error:
            if error is not gone:
                raise
            return Batch([], None, position)  # nobody reads the answer
        finally:
            cancel()
    return broker.read(channel, position, limit)


class ClientGone(Exception):
    """Thrown into a parked long poll whose client closed, as gevent's
    ``Timeout`` is: the wait ends and cleans up wherever it is parked."""
