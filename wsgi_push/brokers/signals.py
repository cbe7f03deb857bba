"""Greenlet wake-ups per channel: how a publish resumes its subscribers.

A subscriber parks on a :class:`Spot` (a gevent ``Waiter``, and a timeout
kept by its hub's :class:`~wsgi_push.brokers.timeouts.Timeouts`) registered
under each channel it follows; a publish takes the channel's whole set and
resumes it in one hub callback.

Safe across threads: under a threaded development server (``flask run``,
Django's ``runserver``) every request thread has a hub of its own, so a
publish resumes each waiter on its own hub, through the loop's thread-safe
callback when that hub belongs to another thread.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterable, Mapping
from time import monotonic

from gevent.hub import Hub, Waiter, get_hub
from gevent.monkey import get_original

from .timeouts import grid_for, timeouts_of

# Real thread primitives even under monkey patching: the registry is shared
# by every thread's hub, and nobody switches greenlets while holding it.
allocate_lock = get_original("_thread", "allocate_lock")
_thread_ident = get_original("_thread", "get_ident")

Behind = Callable[[str, int], bool]
"""``behind(channel, position)``: whether a message after ``position`` may exist."""

_TIMED_OUT = object()
_NOT_PARKED = math.inf
_WOKEN = object()


class WaitResult(enum.Enum):
    """How a wait ended."""

    MESSAGE = "message"
    """A followed channel may have a message after its position: read it."""
    TIMEOUT = "timeout"
    """The timeout passed first: time for a heartbeat."""
    WOKEN = "woken"
    """Woken with nothing new (connections are ending, or :meth:`Spot.wake`)."""


class Spot:
    """Where one greenlet parks: a ``Waiter``, reused for every wait of a
    connection, and its timeout, kept by its hub's
    :class:`~wsgi_push.brokers.timeouts.Timeouts` (see there: timeouts
    fire together, a few times a second, not one by one).

    A park that a publish ends leaves the timeout where it is: the next park
    only notes when it began, and when the timeout's bucket comes due the
    spot either times out (parked for ``timeout`` seconds by then) or files
    itself again for its real deadline (dropping out if no longer parked).
    A subscriber woken many times per heartbeat touches the timeouts once
    per heartbeat, not on every wake-up.

    Per-wait objects outlived the garbage collector's young generation while
    parked, so every wait added long-lived objects and made its full passes
    frequent (about a sixth of the CPU of a fan-out to 5,000 subscribers):
    a spot allocates nothing per wait. :meth:`close` when done.
    """

    __slots__ = (
        "hub", "waiter", "timeout", "woken", "joined", "wait_number",
        "bucket", "due", "on_timeout", "on_notify", "_since", "_grid", "_timeouts",
    )  # fmt: skip

    def __init__(self, timeout: float | None) -> None:
        self.hub: Hub = get_hub()
        self.waiter = Waiter(self.hub)
        self.woken = False
        # The waiting sets of the current wait, and its number: a wake-up
        # meant for an earlier wait of this spot is dropped (Signals.wait).
        self.joined: list[dict[Spot, int]] = []
        self.wait_number = 0
        self.on_timeout: Callable[[], bool] | None = None
        """Called in the hub when a park's timeout passes; True: dealt with
        (a heartbeat written for the parked greenlet), the park goes on and
        its timeout starts again; False: the wait ends as timed out."""
        self.on_notify: Callable[[], bool] | None = None
        """For a spot under one channel: called in the hub when a publish
        notifies the channel while the spot is parked; True: dealt with (the
        news written for the parked greenlet), the park goes on; False: the
        greenlet is resumed to read it."""
        self._timeouts = timeouts_of(self.hub)
        # Where this spot's timeout waits (the Timeouts' bookkeeping).
        self.bucket: dict[Spot, None] | None = None
        self.due = 0.0
        self._since = _NOT_PARKED  # when the current park began
        self.timeout: float | None = None
        self._grid = 0.0
        self.set_timeout(timeout)

    def set_timeout(self, timeout: float | None) -> None:
        """Use ``timeout`` (seconds, None: wait without one) for the next parks."""
        if timeout == self.timeout:
            return
        self._timeouts.discard(self)  # filed for the old timeout
        self.timeout = timeout
        if timeout is not None:
            self._grid = grid_for(timeout)

    def park(self) -> object:
        """Block until resumed or timed out; return what resumed it."""
        waiter = self.waiter
        waiter.clear()
        if self.woken:
            return _WOKEN
        timeout = self.timeout
        if timeout is None:
            return waiter.get()
        timeouts = self._timeouts
        self._since = now = monotonic()
        if self.bucket is None:
            timeouts.add(self, now + timeout, self._grid)
        if not timeouts.parked:
            timeouts.hold(True)
        timeouts.parked += 1
        try:
            return waiter.get()
        finally:
            self._since = _NOT_PARKED
            timeouts.parked -= 1
            if not timeouts.parked:
                timeouts.hold(False)

    def expire(self, now: float) -> None:
        """The timeout's bucket came due (its hub's timeouts call this)."""
        deadline = self._since + self.timeout  # type: ignore[operator]  # filed: has one
        if deadline <= now:
            on_timeout = self.on_timeout
            if on_timeout is not None and on_timeout():
                self._since = now
                self._timeouts.add(self, now + self.timeout, self._grid)  # type: ignore[operator]
                return
            self.waiter.switch(_TIMED_OUT)
        elif deadline != _NOT_PARKED:  # parked again since it was filed
            self._timeouts.add(self, deadline, self._grid)

    def wake(self) -> None:
        """End the current park and every later one at once, from any
        greenlet or thread: the connection is going away."""
        self.woken = True
        _run_on_hub(self.hub, self.waiter.switch, _WOKEN)

    def close(self) -> None:
        """Done with the spot: its timeout goes."""
        self._timeouts.discard(self)


class Signals:
    """One set of parked spots per channel.

    A publish takes the channel's whole set and schedules one hub callback
    that resumes each spot in arrival order: what ``Event.set()`` does,
    without its costs at scale. gevent's ``Event`` keeps its links in a
    list, so a waiter that leaves on a heartbeat timeout unlinks in
    O(waiters) and a wake-up pops the list from the front, O(waiters²) per
    publish; here joining and leaving are O(1) dict operations. A spot that
    follows many channels sits in each of their sets while it parks. A
    wake-up only says "something may have changed": waiters re-check.
    """

    def __init__(self) -> None:
        # channel -> {spot: the number of the wait it is parked in}
        self._waiting: dict[str, dict[Spot, int]] = {}
        self._lock = allocate_lock()
        # The hub of every spot made by new_spot() so far; None once spots of
        # several hubs (threads) were made, and each wake-up sorts them by hub.
        self._only_hub: Hub | None = None
        self._hubs_seen = 0

    def wait(self, positions: Mapping[str, int], behind: Behind, spot: Spot) -> WaitResult:
        """Park ``spot`` under the channels of ``positions`` until one is
        ``behind(channel, position)``, its timeout passes or it is woken.

        Nothing is allocated that lives while parked (the spot keeps the
        sets it joined in a list of its own): per-wait objects that outlive
        the garbage collector's young generation made full passes frequent.
        """
        if spot.woken:
            return WaitResult.WOKEN
        spot.wait_number = number = spot.wait_number + 1
        joined = spot.joined
        waiting_by_channel = self._waiting
        with self._lock:
            for channel in positions:
                waiting = waiting_by_channel.get(channel)
                if waiting is None:
                    waiting = waiting_by_channel[channel] = {}
                waiting[spot] = number
                joined.append(waiting)
        resumed_by = _TIMED_OUT
        try:
            # Looked at once registered: a publish from another thread in
            # between then still finds this spot to wake.
            for channel, position in positions.items():
                if behind(channel, position):
                    return WaitResult.MESSAGE
            resumed_by = spot.park()
            if resumed_by is None:  # a notify of one of the channels
                return WaitResult.MESSAGE
            return WaitResult.TIMEOUT if resumed_by is _TIMED_OUT else WaitResult.WOKEN
        finally:
            # A notify took the one set joined: nothing to leave (the usual
            # wake-up of a single-channel subscriber).
            if resumed_by is not None or len(joined) > 1:
                self._leave(positions, spot)
            joined.clear()

    def _leave(self, channels: Iterable[str], spot: Spot) -> None:
        """Take ``spot`` out of the sets it joined that no notify has taken
        (those are never touched again: a hub callback iterates them)."""
        with self._lock:
            waiting_by_channel = self._waiting
            for channel, waiting in zip(channels, spot.joined, strict=False):
                if waiting_by_channel.get(channel) is waiting:
                    del waiting[spot]
                    if not waiting:
                        del waiting_by_channel[channel]

    def new_spot(self, timeout: float | None) -> Spot:
        """A :class:`Spot` for this thread's hub, to wait on these signals.

        While every spot is on one hub (one server thread), a wake-up is one
        callback on it; spots made elsewhere (``Spot()``) are resumed hub by
        hub, as when several threads wait.
        """
        spot = Spot(timeout)
        with self._lock:
            if self._hubs_seen < 2 and spot.hub is not self._only_hub:
                self._hubs_seen += 1
                self._only_hub = spot.hub if self._hubs_seen == 1 else None
        return spot

    def has_waiters(self, channel: str) -> bool:
        return channel in self._waiting

    def notify(self, channel: str) -> None:
        """Wake every spot parked under ``channel`` (from any thread)."""
        with self._lock:
            waiting = self._waiting.pop(channel, None)
        if waiting:
            self._resume(channel, waiting, None)

    def notify_all(self) -> None:
        """Wake every parked spot with nothing new (used to end connections)."""
        with self._lock:
            everything, self._waiting = self._waiting, {}
        for channel, waiting in everything.items():
            self._resume(channel, waiting, _WOKEN)

    def _resume(self, channel: str, spots: dict[Spot, int], value: object) -> None:
        """Resume ``spots`` with ``value``: one callback on the hub they share
        (the usual case, one server thread), else one per hub."""
        only_hub = self._only_hub
        if only_hub is not None:
            _run_on_hub(only_hub, self._resume_in_hub, channel, spots, value)
            return
        by_hub: dict[Hub, dict[Spot, int]] = {}
        for spot, number in spots.items():
            by_hub.setdefault(spot.hub, {})[spot] = number
        for hub, own in by_hub.items():
            _run_on_hub(hub, self._resume_in_hub, channel, own, value)

    def _resume_in_hub(self, channel: str, spots: dict[Spot, int], value: object) -> None:
        """Resume each spot still in the wait it was notified for (runs in its
        hub): ``None`` for a notify, ``_WOKEN`` to end connections. One that has
        moved on to a later wait (its timer woke it first) is left alone; one
        whose wait ended but that hasn't parked again only stores the value,
        which its next ``park()`` clears. A parked spot whose ``on_notify``
        deals with the news stays parked, under the channel again."""
        for spot, number in spots.items():
            if spot.wait_number != number:
                continue
            on_notify = spot.on_notify
            # Only while its greenlet is blocked in a park (with a timeout):
            # not while it writes.
            if on_notify is not None and value is None and spot._since != _NOT_PARKED:
                # Back under the channel first: news published meanwhile (by
                # another thread) then notifies it again.
                with self._lock:
                    waiting = self._waiting.get(channel)
                    if waiting is None:
                        waiting = self._waiting[channel] = {}
                    waiting[spot] = number
                    spot.joined[0] = waiting
                if on_notify():
                    # Bytes went out: the next heartbeat is due a whole
                    # timeout from now, as after a wake-up.
                    spot._since = monotonic()
                    continue
                with self._lock:  # its greenlet reads the news: out again
                    if self._waiting.get(channel) is waiting:
                        del waiting[spot]
                        if not waiting:
                            del self._waiting[channel]
            spot.waiter.switch(value)


def _run_on_hub(hub: Hub, function: Callable[..., object], *args: object) -> None:
    """Run ``function`` in ``hub``'s loop, thread-safely if it is another thread's."""
    if hub.thread_ident == _thread_ident():
        hub.loop.run_callback(function, *args)
    else:
        hub.loop.run_callback_threadsafe(function, *args)
