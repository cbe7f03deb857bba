"""Timeouts of parked greenlets, coalesced: one libev timer per hub.

A parked subscriber's timeout is its heartbeat. With a libev timer each,
10,000 idle SSE connections with 15 s heartbeats woke the process about 667
times a second for one heartbeat each, and waking an idle process (the
poll returning, caches gone cold meanwhile) cost several times the
heartbeat itself. Here a deadline is rounded up to a grid (a sixteenth of
the timeout, at most :data:`MAX_GRID`), entries with the same rounded
deadline share a bucket, and one timer fires a whole bucket at once: a few
wake-ups a second whatever the number of connections. A timeout ends at
most a grid late, never early.

Each hub (thread) has its own :class:`Timeouts`; only its own thread uses it.
"""

from __future__ import annotations

import math
import weakref
from heapq import heappop, heappush
from time import monotonic
from typing import Any, Protocol

from gevent.hub import Hub
from gevent.monkey import get_original

MAX_GRID = 0.25
"""The coarsest rounding of a deadline (seconds): how late a long timeout may end."""
MIN_GRID = 0.001
"""The finest (libev's own resolution): a very short timeout still coalesces."""


def grid_for(timeout: float) -> float:
    """How finely a deadline ``timeout`` seconds away is rounded."""
    return min(max(timeout / 16, MIN_GRID), MAX_GRID)


class Expiring(Protocol):
    """What waits in :class:`Timeouts`: the bucket it is in (None: none)
    and its rounded deadline, both kept by :class:`Timeouts`, and what to do
    when that deadline passes."""

    bucket: dict[Any, None] | None
    due: float

    def expire(self, now: float) -> None:
        """Its bucket's deadline passed (``now``: ``time.monotonic()``).
        It may :meth:`Timeouts.add` itself again, for a later deadline."""


class Timeouts:
    """The pending timeouts of one hub: buckets of entries by rounded
    deadline, and one timer set for the earliest.

    Adding and removing an entry is O(1) (a bucket is a dict, in arrival
    order, so that the first to wait expires first); the heap holds one
    deadline per bucket, a few per second of timeout. The timer keeps the
    loop alive only while ``parked`` (the entries' owners count themselves
    in while they wait) is non-zero: an entry may stay behind, added for a
    park that ended, until its deadline (see :class:`~.signals.Spot`).
    """

    __slots__ = ("_loop", "_buckets", "_deadlines", "_timer", "_armed_for", "_pending", "parked")

    def __init__(self, hub: Hub) -> None:
        self._loop = hub.loop
        self._buckets: dict[float, dict[Any, None]] = {}
        self._deadlines: list[float] = []  # a heap: the keys of _buckets
        self._timer: Any = None
        self._armed_for = math.inf
        self._pending = 0  # entries in the buckets
        self.parked = 0
        """How many entries' owners are waiting: see :meth:`hold`."""

    def add(self, entry: Expiring, deadline: float, grid: float) -> None:
        """Call ``entry.expire()`` once ``time.monotonic()`` has passed
        ``deadline`` rounded up to a multiple of ``grid`` (``grid_for()`` of
        the timeout, computed once by the caller), unless :meth:`discard`
        comes first. The entry must not be in a bucket already."""
        due = (math.floor(deadline / grid) + 1) * grid
        buckets = self._buckets
        bucket = buckets.get(due)
        if bucket is None:
            bucket = buckets[due] = {}
            heappush(self._deadlines, due)
            if due < self._armed_for:
                self._arm(due)
        bucket[entry] = None
        entry.bucket = bucket
        entry.due = due
        self._pending += 1

    def discard(self, entry: Expiring) -> None:
        """Forget ``entry``'s timeout, if it has one."""
        bucket = entry.bucket
        if bucket is None:
            return
        entry.bucket = None
        if self._buckets.get(entry.due) is bucket:  # else: fired, and left alone
            del bucket[entry]
            self._pending -= 1
            if not self._pending:
                self._disarm()

    def hold(self, loop_alive: bool) -> None:
        """Whether the timer keeps the loop running: the owners call it as
        ``parked`` leaves or reaches zero (a parked greenlet with nothing
        else to resume it would otherwise find the loop ended)."""
        if self._timer is not None:
            self._timer.ref = loop_alive

    def _arm(self, due: float) -> None:
        if self._timer is not None:
            self._timer.close()
        self._timer = self._loop.timer(max(due - monotonic(), 0.0), ref=self.parked > 0)
        self._timer.start(self._fire, update=True)
        self._armed_for = due

    def _disarm(self) -> None:
        """Nothing waits: no timer, no empty bucket stays."""
        if self._timer is not None:
            self._timer.close()
            self._timer = None
        self._armed_for = math.inf
        self._buckets.clear()
        self._deadlines.clear()

    def _fire(self) -> None:
        """Expire every bucket whose deadline has passed (the one the timer
        was set for first: libev may run it a hair before the clock says so)."""
        self._timer = None
        self._armed_for = math.inf
        buckets, deadlines = self._buckets, self._deadlines
        now = monotonic()
        expired = [buckets.pop(heappop(deadlines))]
        while deadlines and deadlines[0] <= now:
            expired.append(buckets.pop(heappop(deadlines)))
        for bucket in expired:
            self._pending -= len(bucket)
        if not self._pending:
            self._disarm()
        else:
            self._arm(deadlines[0])
        for bucket in expired:
            for entry in bucket:
                # Still in this bucket: not discarded meanwhile (an earlier
                # entry's greenlet runs before this one's turn comes).
                if entry.bucket is bucket:
                    entry.bucket = None
                    entry.expire(now)


_lock = get_original("_thread", "allocate_lock")()
_by_hub: weakref.WeakKeyDictionary[Hub, Timeouts] = weakref.WeakKeyDictionary()


def timeouts_of(hub: Hub) -> Timeouts:
    """The :class:`Timeouts` of ``hub`` (made on first use)."""
    with _lock:
        timeouts = _by_hub.get(hub)
        if timeouts is None:
            timeouts = _by_hub[hub] = Timeouts(hub)
        return timeouts
