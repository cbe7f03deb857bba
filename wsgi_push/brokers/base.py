"""The broker interface every backend implements, and the pieces they share.

A broker owns one numbered queue per channel: it assigns ids on
:meth:`Broker.publish`, answers "everything retained after id N" with
:meth:`Broker.read` (gap rules included), and parks a greenlet in
:meth:`Broker.wait` until a message after N exists. Transports only ever
talk to this interface.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass
from typing import Any

from ..message import Gap, Message, check_channel, check_data, check_event
from .signals import Signals, Spot


@dataclass(slots=True)  # not frozen: a frozen __init__ costs a setattr call per field, per read
class Batch:
    """What a read returns: messages in id order, an optional gap notice, and
    ``last_id``, the position to read after next time. Treat it as read-only."""

    messages: list[Message]
    gap: Gap | None
    last_id: int

    def __bool__(self) -> bool:
        return bool(self.messages) or self.gap is not None


def plan_read(after: int, first: int, last: int) -> tuple[int, Gap | None]:
    """Decide where a client at ``after`` reads from, and whether it gets a gap.

    ``first`` is the oldest retained id (0 when none), ``last`` the newest id
    ever assigned. Position 0 means "everything retained" and never gaps; any
    other position gaps when messages after it are gone, or when it is newer
    than anything the channel has (the broker lost its history).
    """
    if after == 0:
        return 0, None
    lost_behind = after < (first - 1 if first else last)
    if lost_behind or after > last:
        return 0, Gap(after, first, last)
    return after, None


def make_batch(messages: list[Message], gap: Gap | None, after: int, last: int) -> Batch:
    """Build a :class:`Batch`, working out the next position to read after."""
    if messages:
        next_position = messages[-1].id
    elif gap is not None:
        next_position = last
    else:
        next_position = after
    return Batch(messages, gap, next_position)


class Broker(ABC):
    """Interface of a message broker.

    ``max_messages`` bounds each channel's retained history by count and
    ``max_age`` (seconds, or None) by age. Presence (subscriber counts) is
    kept per process here; a distributed broker extends it.
    """

    def __init__(self, max_messages: int = 1000, max_age: float | None = None) -> None:
        if not isinstance(max_messages, int) or max_messages < 1:
            raise ValueError("max_messages must be a positive integer")
        if max_age is not None and not max_age > 0:
            raise ValueError("max_age must be a positive number of seconds or None")
        self.max_messages = max_messages
        self.max_age = max_age
        self.signals = Signals()
        self.published = 0
        """Messages published through this broker object (this process)."""
        self._subscribers: Counter[str] = Counter()

    def publish(self, channel: str, data: Any, event: str | None = None) -> int:
        """Append a message to ``channel`` and return its id.

        Raises :class:`ValueError` for a bad channel name, event name or
        data that JSON can't carry.
        """
        message_id = self._append(check_channel(channel), check_event(event), check_data(data))
        self.published += 1
        return message_id

    @abstractmethod
    def _append(self, channel: str, event: str, data_json: str) -> int:
        """Store a validated message (``data_json``: its data as compact
        JSON) and wake the channel's waiters; return its id."""

    @abstractmethod
    def read(self, channel: str, after: int, limit: int | None = None) -> Batch:
        """Everything retained after id ``after`` (at most ``limit``), with gap rules."""

    @abstractmethod
    def last_id(self, channel: str) -> int:
        """The newest id ever assigned in ``channel`` (0 if none)."""

    def wait(
        self, channel: str, after: int, timeout: float | None, spot: Spot | None = None
    ) -> bool:
        """Block this greenlet until a message after ``after`` exists or
        ``timeout`` seconds pass. Returns whether one exists. A subscriber
        loop passes its own reusable :class:`~wsgi_push.brokers.signals.Spot`."""
        return self.signals.wait(channel, lambda: self.last_id(channel) > after, timeout, spot)

    def wake_all(self) -> None:
        """Wake every waiting greenlet, e.g. so that connections can end."""
        self.signals.notify_all()

    # Presence ---------------------------------------------------------------

    def add_subscriber(self, channel: str) -> None:
        """Count one more subscriber of ``channel`` in this process.

        Cheap on purpose (no I/O): it runs on every connect. Ask
        :meth:`subscriber_count` when the number matters.
        """
        self._subscribers[channel] += 1

    def remove_subscriber(self, channel: str) -> None:
        """Count one subscriber of ``channel`` fewer in this process."""
        self._subscribers[channel] -= 1
        if self._subscribers[channel] <= 0:
            del self._subscribers[channel]

    def subscriber_count(self, channel: str) -> int:
        """How many streaming subscribers ``channel`` has."""
        return self._subscribers.get(channel, 0)

    def close(self) -> None:  # noqa: B027 - optional hook, not abstract
        """Release the broker's resources. The default has none."""
