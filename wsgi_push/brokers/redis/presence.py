"""Subscriber counts summed over every live process.

Each process writes its own counts into its own hash and keeps itself in a
set of live processes with an expiry time; a background greenlet writes
bursts of changes in one round trip and refreshes everything every third of
the TTL, so a crashed process's subscribers stop counting after the TTL.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

from ...errors import BrokerUnavailable
from .background import Background


class Presence:
    """This process's share of the presence keys.

    ``subscribers`` is the process's own live count per channel (the
    broker's); ``redis_call`` turns outages into :class:`BrokerUnavailable`.
    """

    def __init__(
        self,
        client: Any,
        script: Any,
        key_prefix: str,
        process_id: str,
        ttl: float,
        retry_interval: float,
        subscribers: Counter[str],
        redis_call: Callable[[], AbstractContextManager[None]],
    ) -> None:
        self.client = client
        self.script = script
        self.process_id = process_id
        self.ttl = ttl
        self.retry_interval = retry_interval
        self.subscribers = subscribers
        self.redis_call = redis_call
        self.processes_key = f"{key_prefix}:processes"
        self.counts_prefix = f"{key_prefix}:presence:"
        self._dirty: set[str] = set()
        self._pending = threading.Event()  # gevent's under monkey patching
        self._writing = threading.Lock()  # one write of this process's counts at a time
        self._keeper = Background("presence keeper", self._keep, (retry_interval, ttl / 3))

    def changed(self, channel: str) -> None:
        """Note a join or leave; the keeper writes a burst of them in one
        round trip, so 1,000 joins don't queue on the connection pool."""
        self._dirty.add(channel)
        self._pending.set()
        self.start()

    def count(self, channel: str) -> int:
        """Subscribers of ``channel`` in every live process, this process's
        own count written first; this process's count while Redis is away."""
        self.start()
        with self._writing:  # not between the keeper's reading and writing a count
            local_count = self.subscribers.get(channel, 0)
            try:
                with self.redis_call():
                    return int(self._write(channel, [(channel, local_count)]))
            except BrokerUnavailable:
                return local_count

    def start(self) -> None:
        self._keeper.start()

    def _write(self, channel: str, counts: list[tuple[str, int]], replace: bool = False) -> Any:
        args: list[Any] = [
            self.process_id,
            self.counts_prefix,
            round(self.ttl * 1000),
            "1" if replace else "0",
            channel,
        ]
        for pair in counts:
            args.extend(pair)
        keys = [self.processes_key, self.counts_prefix + self.process_id]
        return self.script(keys=keys, args=args)

    def _changes(self, changed: bool) -> Iterator[tuple[str, int]]:
        if not changed:
            yield from list(self.subscribers.items())
            return
        dirty, self._dirty = self._dirty, set()
        for channel in dirty:
            yield channel, self.subscribers.get(channel, 0)

    def _keep(self) -> None:
        """Write changed counts as they come (batched), or rewrite them all
        once a third of the TTL passed without a change, which keeps them
        alive and repairs them after an outage. A failed write raises (the
        keeper logs it once per outage and retries), its changes kept."""
        changed = self._pending.wait(self.ttl / 3)
        with self._writing:
            if self._keeper.stopping:
                return  # withdrawn meanwhile: write nothing back
            self._pending.clear()
            counts = list(self._changes(changed))
            try:
                with self.redis_call():
                    self._write("", counts, replace=not changed)
            except BaseException:
                self._dirty.update(channel for channel, _ in counts)
                self._pending.set()
                raise

    def withdraw(self) -> None:
        """Stop the keeper and remove this process's entries."""
        self._keeper.stop()
        self._pending.set()  # ends its wait, and it writes nothing more
        with self._writing:  # after a write in progress, not before it
            try:
                with self.redis_call():
                    self.client.zrem(self.processes_key, self.process_id)
                    self.client.delete(self.counts_prefix + self.process_id)
            except BrokerUnavailable:
                pass  # the entry expires after the TTL anyway
