"""A channel's retained messages, bounded by count and age, in memory."""

from __future__ import annotations

import bisect
import time
from operator import attrgetter

from ..message import Message
from .base import Batch, make_batch, plan_read

_message_id = attrgetter("id")


class History:
    """The newest ``max_messages`` of one channel, none older than ``max_age``.

    ``last_id`` outlives the messages themselves, so ids are never reused
    and a client ahead of or behind the history is told about the gap.
    """

    __slots__ = ("retained", "last_id", "max_messages", "max_age", "_newest")

    def __init__(self, max_messages: int, max_age: float | None) -> None:
        self.retained: list[Message] = []
        self.last_id = 0
        self.max_messages = max_messages
        self.max_age = max_age
        self._newest: Batch | None = None

    def append(self, message: Message) -> None:
        """Add ``message`` (its id must be above ``last_id``) and trim by count."""
        self.retained.append(message)
        self.last_id = message.id
        # What every caught-up subscriber reads next: built once, shared by all.
        self._newest = Batch([message], None, message.id)
        excess = len(self.retained) - self.max_messages
        if excess > 0:
            del self.retained[:excess]

    def expire(self, now: float | None = None) -> None:
        """Drop messages older than ``max_age``."""
        if self.max_age is None or not self.retained:
            return
        cutoff = (time.time() if now is None else now) - self.max_age
        if self.retained[0].published_at >= cutoff:
            return
        keep_from = bisect.bisect_left(self.retained, cutoff, key=attrgetter("published_at"))
        del self.retained[:keep_from]

    @property
    def first_id(self) -> int:
        """The oldest retained id, 0 when nothing is retained."""
        return self.retained[0].id if self.retained else 0

    def read(self, after: int, limit: int | None = None) -> Batch:
        """Messages after ``after`` per the gap rules of :func:`plan_read`
        (``limit``, if given, is at least 1)."""
        self.expire()
        newest = self._newest
        if after == self.last_id - 1 and newest is not None and self.retained:
            return newest  # the usual wake-up: just the newest message, no gap possible
        if after == self.last_id:
            return Batch([], None, after)  # a long poll with nothing new: no gap possible
        start, gap = plan_read(after, self.first_id, self.last_id)
        index = bisect.bisect_right(self.retained, start, key=_message_id)
        end = None if limit is None else index + limit
        return make_batch(self.retained[index:end], gap, after, self.last_id)
