"""The demo publishers, each run forever in its own greenlet.

They publish through a ``publish(channel, data, event=None)`` callable
(``Push.publish``), exactly as application code would.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable
from datetime import datetime, timezone

import gevent
from gevent.event import Event

Publish = Callable[..., int]

# Scenario 2's swing: from 100 per second down to 1 per minute and back.
SWING = (100.0, 10.0, 1.0, 0.1, 1 / 60, 0.1, 1.0, 10.0)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def publish_clock(publish: Publish, max_interval: float) -> None:
    """Scenario 1: ``{"time": …}`` after a random pause of 0 to ``max_interval`` s."""
    while True:
        gevent.sleep(random.uniform(0, max_interval))
        publish("clock", {"time": now_iso()})


def publish_hoge(publish: Publish, interval: float) -> None:
    """Scenario 4: ``{"message": "hoge<n>", "createdAt": …}`` every ``interval`` s."""
    for n in itertools.count():
        publish("hoge", {"message": f"hoge{n}", "createdAt": now_iso()})
        gevent.sleep(interval)


class RateFeed:
    """Scenario 2: a feed published at a settable rate, or swinging through
    :data:`SWING`. Each message carries its publish time (``sent``, ms since
    the epoch) so the page can measure the delay to display."""

    channel = "feed"

    def __init__(self, publish: Publish, rate: float, swing_seconds: float) -> None:
        self._publish = publish
        self.swing_seconds = swing_seconds
        self.fixed_rate: float | None = rate
        self._swing_started = time.monotonic()
        self._changed = Event()

    def set_rate(self, rate: float | None) -> None:
        """A fixed rate in messages per second, or None to swing."""
        if rate is not None and not 1 / 3600 <= rate <= 1000:
            raise ValueError("rate must be between 1/hour and 1000 per second")
        self.fixed_rate = rate
        self._swing_started = time.monotonic()
        self._changed.set()  # wake the publisher: the old pause no longer applies

    def schedule(self) -> tuple[float, float]:
        """The current rate, and the seconds until it changes by itself."""
        if self.fixed_rate is not None:
            return self.fixed_rate, float("inf")
        elapsed = time.monotonic() - self._swing_started
        step, into_step = divmod(elapsed, self.swing_seconds)
        return SWING[int(step) % len(SWING)], self.swing_seconds - into_step

    def run(self) -> None:
        value = 100.0
        last_due = time.monotonic()
        for seq in itertools.count(1):
            while True:
                rate, until_change = self.schedule()
                wait = last_due + 1 / rate - time.monotonic()
                if wait <= 0:
                    break
                self._changed.clear()
                self._changed.wait(min(wait, until_change))
            # Pace from the previous due time, not from "now", so 100/s holds
            # although every sleep overshoots a little; but never run more
            # than one interval behind (no burst after a long pause).
            last_due = max(last_due + 1 / rate, time.monotonic() - 1 / rate)
            value = round(value + random.uniform(-1, 1), 2)
            self._publish(
                self.channel, {"seq": seq, "value": value, "rate": rate, "sent": time.time() * 1000}
            )
