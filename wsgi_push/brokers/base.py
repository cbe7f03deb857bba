"""The broker interface every backend implements, and the pieces they share.

A broker owns one numbered queue per channel: it assigns ids on
:meth:`Broker.publish`, answers "everything retained after id N" with
:meth:`Broker.read` (gap rules included), and parks a greenlet in
:meth:`Broker.wait` until one of the channels it follows has a message
after its position. Transports only ever talk to this interface.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from typing import Any

from ..message import Gap, Message, check_channel, check_data, check_event
from .signals import Signals, Spot, WaitResult

__all__ = ["Batch", "Broker", "Spot", "WaitResult", "make_batch", "plan_read"]

PublishEntry = tuple[str, Any, "str | None"]
"""``(channel, data, event)``: one message of :meth:`Broker.publish_many`."""


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


def _never_behind(channel: str, position: int) -> bool:
    return False


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
        # Bound once: a bound method made per wait would live while parked.
        self._behind = self.behind
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

    def publish_many(self, messages: Iterable[PublishEntry]) -> list[int]:
        """Publish ``(channel, data, event)`` entries in order; return their ids.

        All or nothing: every entry is validated first, and a bad one raises
        :class:`ValueError` naming its index with nothing stored.
        """
        checked = []
        for index, entry in enumerate(messages):
            try:
                channel, data, event = entry
                checked.append((check_channel(channel), check_event(event), check_data(data)))
            except (TypeError, ValueError) as error:
                raise ValueError(f"message {index}: {error}") from None
        ids = self._append_many(checked) if checked else []
        self.published += len(ids)
        return ids

    @abstractmethod
    def _append(self, channel: str, event: str, data_json: str) -> int:
        """Store a validated message (``data_json``: its data as compact
        JSON) and wake the channel's waiters; return its id."""

    def _append_many(self, entries: Sequence[tuple[str, str, str]]) -> list[int]:
        """Store validated ``(channel, event, data_json)`` entries in order.
        A backend with a round trip per call overrides it to make one."""
        return [self._append(channel, event, data_json) for channel, event, data_json in entries]

    @abstractmethod
    def read(self, channel: str, after: int, limit: int | None = None) -> Batch:
        """Everything retained after id ``after`` (at most ``limit``), with gap rules."""

    def read_nowait(self, channel: str, after: int) -> Batch | None:
        """What :meth:`read` returns, if it can be known without I/O (None:
        it can't). Called in the hub, to write news for a parked stream."""
        return None

    @abstractmethod
    def last_id(self, channel: str) -> int:
        """The newest id ever assigned in ``channel`` (0 if none)."""

    # Waiting ----------------------------------------------------------------

    @abstractmethod
    def behind(self, channel: str, position: int) -> bool:
        """Whether a message after ``position`` may exist in ``channel``.

        Cheap and without I/O: it runs on every wake-up of every waiter.
        True when the broker can't tell (a reader finds out); a broker that
        can't tell for a while parks waiters for a poll interval instead
        (see :meth:`pause`), so that they don't spin.
        """

    def waiting_spot(self, timeout: float | None) -> Spot:
        """A reusable place for one connection's greenlet to park in
        :meth:`wait` with ``timeout``. ``close()`` it when the connection
        ends; ``wake()`` it (from any greenlet or thread) to end its waits."""
        return self.signals.new_spot(timeout)

    def wait(
        self, positions: Mapping[str, int], timeout: float | None, spot: Spot | None = None
    ) -> WaitResult:
        """Block this greenlet until a channel of ``positions`` (channel ->
        last id seen) has a message after its position, ``timeout`` seconds
        pass, or the wait is woken (:meth:`wake_all`, ``spot.wake()``).

        One wait follows any number of channels with one spot: no greenlet,
        timer or waiter per channel.
        """
        if spot is None:
            with closing(self.signals.new_spot(timeout)) as own_spot:
                return self.signals.wait(positions, self._behind, own_spot)
        if spot.timeout != timeout:
            spot.set_timeout(timeout)
        return self.signals.wait(positions, self._behind, spot)

    def pause(
        self, channels: Iterable[str], timeout: float, spot: Spot | None = None
    ) -> WaitResult:
        """Park for ``timeout`` whatever the channels hold (e.g. while the
        backend is unreachable); a publish or a wake still ends it early."""
        positions = dict.fromkeys(channels, 0)
        if spot is None:
            with closing(self.signals.new_spot(timeout)) as own_spot:
                return self.signals.wait(positions, _never_behind, own_spot)
        spot.set_timeout(timeout)
        # The pause must end when its time is up (the caller retries then),
        # not be extended by heartbeats written for it, and end on news.
        on_timeout, on_notify = spot.on_timeout, spot.on_notify
        spot.on_timeout = spot.on_notify = None
        try:
            return self.signals.wait(positions, _never_behind, spot)
        finally:
            spot.on_timeout, spot.on_notify = on_timeout, on_notify

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
        remaining = self._subscribers[channel] - 1
        if remaining > 0:
            self._subscribers[channel] = remaining
        else:
            self._subscribers.pop(channel, None)  # Counter's own del is Python code

    def subscriber_count(self, channel: str) -> int:
        """How many streaming subscribers ``channel`` has."""
        return self._subscribers.get(channel, 0)

    def close(self) -> None:  # noqa: B027 - optional hook, not abstract
        """Release the broker's resources. The default has none."""
