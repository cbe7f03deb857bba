"""This process's read-through cache of each channel's newest messages.

A notification wakes every local subscriber of a channel; the first one to
read fetches what is new from Redis, the others are served the same
:class:`~wsgi_push.message.Message` objects from here. The cache answers only
when it provably holds the answer (see :meth:`ChannelCache.read`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from ...message import Message
from ..base import Batch, make_batch, plan_read
from ..history import History

# (channel, after, limit) -> (last id, oldest retained id, messages after `after`)
Fetch = Callable[[str, int, "int | None"], "tuple[int, int, list[Message]]"]


class ChannelRecord:
    """What this process knows of one channel: ``known_last`` (from
    notifications and reads) and ``recent``, a small cache of the newest
    messages shared by all local subscribers. ``first_retained`` is Redis's
    oldest retained id at the latest read. ``epoch`` is the listener session
    the knowledge dates from; the cache is trusted only within it."""

    __slots__ = ("recent", "known_last", "first_retained", "epoch", "lock")

    def __init__(self, cache_messages: int, max_age: float | None) -> None:
        self.recent = History(cache_messages, max_age)
        self.known_last = 0
        self.first_retained = 0
        self.epoch = -1
        self.lock = threading.Lock()  # gevent's under monkey patching

    def covers(self, after: int) -> bool:
        """Whether the cache holds every retained message after ``after``
        (position 0, "everything retained", needs Redis's oldest one too)."""
        recent = self.recent
        if not recent.retained:
            # Known in full without a message only if it never had one.
            return recent.last_id == 0 and self.first_retained == 0
        if after == 0:
            return recent.first_id == self.first_retained
        return recent.first_id - 1 <= after <= recent.last_id

    def forget(self) -> None:
        """Drop the cached messages: Redis lost what they came from."""
        self.recent = History(self.recent.max_messages, self.recent.max_age)
        self.known_last = self.first_retained = 0

    def remember(self, messages: list[Message]) -> None:
        """Merge freshly read messages (contiguous, in id order) into the cache."""
        if not messages or messages[-1].id <= self.recent.last_id:
            return
        if messages[0].id != self.recent.last_id + 1:
            self.recent = History(self.recent.max_messages, self.recent.max_age)
        for message in messages:
            if message.id > self.recent.last_id:
                self.recent.append(message)


class ChannelCache:
    """Records of up to ``max_channels`` channels, least recently used
    dropped first, and the read path through them.

    ``fetch`` reads Redis; ``trusted_epoch()`` is the listener session the
    cache may be trusted in (-1 while the listener is down: trust nothing).
    """

    def __init__(
        self,
        cache_messages: int,
        max_age: float | None,
        max_channels: int,
        fetch: Fetch,
        trusted_epoch: Callable[[], int],
    ) -> None:
        self.cache_messages = cache_messages
        self.max_age = max_age
        self.max_channels = max_channels
        self._fetch = fetch
        self._trusted_epoch = trusted_epoch
        self._records: dict[str, ChannelRecord] = {}

    def get(self, channel: str) -> ChannelRecord | None:
        """The record of ``channel`` if it has one (no side effect)."""
        return self._records.get(channel)

    def record(self, channel: str) -> ChannelRecord:
        """The record of ``channel``, made if needed, now the most recently used."""
        records = self._records
        record = records.pop(channel, None)
        if record is None:
            record = ChannelRecord(self.cache_messages, self.max_age)
            while len(records) >= self.max_channels:
                del records[next(iter(records))]
        records[channel] = record
        return record

    def drop(self, channel: str) -> None:
        """Forget ``channel``'s record; its waiters read when they next look."""
        self._records.pop(channel, None)

    def forget_all(self) -> list[str]:
        """Drop every record (Redis lost data); the channels they were for."""
        channels = list(self._records)
        self._records.clear()
        return channels

    def items(self) -> Iterator[tuple[str, ChannelRecord]]:
        return iter(list(self._records.items()))

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._records))

    def read(self, channel: str, after: int, limit: int | None) -> Batch:
        record = self.record(channel)
        batch = self._read_cached(record, after, limit)
        if batch is None:
            # One Redis read per channel at a time; the others use its result.
            with record.lock:
                batch = self._read_cached(record, after, limit)
                if batch is None:
                    batch = self._read_redis(channel, record, after, limit)
        return batch

    def _read_cached(self, record: ChannelRecord, after: int, limit: int | None) -> Batch | None:
        """Serve from the cache when it provably holds the answer: the
        listener is up since the cache was filled, nothing newer is known,
        and the cache holds everything after ``after``."""
        recent = record.recent
        epoch = self._trusted_epoch()
        if epoch < 0 or record.epoch != epoch:
            return None
        recent.expire()
        if recent.last_id != record.known_last or not record.covers(after):
            return None
        return recent.read(after, limit)

    def _read_redis(
        self, channel: str, record: ChannelRecord, after: int, limit: int | None
    ) -> Batch:
        epoch = self._trusted_epoch()
        recent = record.recent
        # A subscriber the cache already covers only needs what is newer.
        extend = epoch >= 0 and epoch == record.epoch and record.covers(after)
        start = recent.last_id if extend else after
        # Known before the fetch: a notification during it may know more.
        known = record.known_last
        last, first, messages = self._fetch(channel, start, None if extend else limit)
        if last < known:
            # Ids went down: Redis lost data. Drop the record, so that the
            # channel's waiters read when they next look (behind() says so).
            record.forget()
            if self._records.get(channel) is record:
                self.drop(channel)
        record.known_last = max(record.known_last, last)
        record.first_retained = first
        record.epoch = epoch
        record.remember(messages)
        cached = self._read_cached(record, after, limit)
        if cached is not None:
            return cached
        begin, gap = plan_read(after, first, last)
        # Retained ids are contiguous, so what was fetched after ``start`` is
        # also everything after ``begin`` unless retained ids lie between.
        if begin != start and first and start >= first:
            last, first, messages = self._fetch(channel, begin, limit)
            begin, gap = plan_read(after, first, last)
        return make_batch(messages[:limit], gap, after, last)
