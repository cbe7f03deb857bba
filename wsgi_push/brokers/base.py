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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gevent.hub import Waiter, get_hub

from ..message import Gap, Message, check_channel, check_data, check_event


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


class Signals:
    """Greenlet wake-ups: one set of parked waiters per channel.

    A publish takes the channel's whole set and schedules one hub callback
    that resumes each waiter in arrival order: what ``Event.set()`` does,
    without its costs at scale. gevent's ``Event`` keeps its links in a
    list, so a waiter that leaves on a heartbeat timeout unlinks in
    O(waiters) and a wake-up pops the list from the front, O(waiters²) per
    publish; here joining and leaving are O(1) dict operations. A wake-up
    only says "something may have changed": waiters re-check ``ready()``.
    """

    def __init__(self) -> None:
        self._waiting: dict[str, dict[Waiter, None]] = {}

    def wait(self, channel: str, ready: Callable[[], bool], timeout: float | None) -> bool:
        """Block this greenlet until ``ready()`` or ``timeout``; return ``ready()``."""
        if ready():
            return True
        waiting = self._waiting.get(channel)
        if waiting is None:
            waiting = self._waiting[channel] = {}
        hub = get_hub()
        waiter = Waiter(hub)
        waiting[waiter] = None
        # The timeout is a bare loop timer that resumes the waiter, not a
        # Timeout exception thrown into the greenlet.
        timer = hub.loop.timer(timeout) if timeout is not None else None
        try:
            if timer is not None:
                timer.start(waiter.switch, None)
            waiter.get()
        finally:
            if timer is not None:
                timer.close()
            # Once a notify has taken the set, it is never touched again.
            if self._waiting.get(channel) is waiting:
                del waiting[waiter]
                if not waiting:
                    del self._waiting[channel]
        return ready()

    def has_waiters(self, channel: str) -> bool:
        return channel in self._waiting

    def notify(self, channel: str) -> None:
        """Wake every greenlet waiting on ``channel``."""
        waiting = self._waiting.pop(channel, None)
        if waiting:
            get_hub().loop.run_callback(_resume, waiting)

    def notify_all(self) -> None:
        """Wake every waiter on every channel (used to end connections)."""
        everything, self._waiting = self._waiting, {}
        for waiting in everything.values():
            get_hub().loop.run_callback(_resume, waiting)


def _resume(waiters: dict[Waiter, None]) -> None:
    """Resume each waiter (runs in the hub). One whose timer already woke it
    is no longer waiting, and ``Waiter.switch`` then only stores the value."""
    for waiter in waiters:
        waiter.switch(None)


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

    def wait(self, channel: str, after: int, timeout: float | None) -> bool:
        """Block this greenlet until a message after ``after`` exists or
        ``timeout`` seconds pass. Returns whether one exists."""
        return self.signals.wait(channel, lambda: self.last_id(channel) > after, timeout)

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
