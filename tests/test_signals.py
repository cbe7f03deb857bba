"""Wake-ups per channel (``wsgi_push/brokers/signals.py``), in-process with gevent."""

from __future__ import annotations

import time

import gevent
from gevent.hub import get_hub

from wsgi_push.brokers.signals import Signals, Spot


def test_a_reused_spot_times_out_then_wakes_on_notify() -> None:
    signals, spot, state = Signals(), Spot(0.05), {"ready": False}
    started = time.monotonic()
    assert signals.wait("c", lambda: state["ready"], 0.05, spot) is False
    assert time.monotonic() - started >= 0.04
    waiter = gevent.spawn(signals.wait, "c", lambda: state["ready"], 0.05, spot)
    gevent.sleep(0)
    state["ready"] = True
    signals.notify("c")
    assert waiter.get(timeout=1) is True
    assert not signals.has_waiters("c")
    spot.close()


def test_a_stale_wake_up_of_a_reused_spot_keeps_it_parked() -> None:
    """A notify's callback can still be pending when its waiter's timer woke
    it and it parked again on the same spot; that late resume must not end
    the new wait."""
    signals, spot, state = Signals(), Spot(5.0), {"ready": False}
    waiter = gevent.spawn(signals.wait, "c", lambda: state["ready"], 5.0, spot)
    gevent.sleep(0)
    get_hub().loop.run_callback(spot.waiter.switch, None)  # the stale resume
    gevent.idle()  # until the hub has run every pending callback, the stale resume included
    assert not waiter.dead and signals.has_waiters("c")
    state["ready"] = True
    signals.notify("c")
    assert waiter.get(timeout=1) is True
    spot.close()


def test_notify_all_ends_waits_that_are_not_ready() -> None:
    signals = Signals()
    waiters = [gevent.spawn(signals.wait, f"c{n}", lambda: False, 30.0) for n in range(3)]
    gevent.sleep(0)
    signals.notify_all()
    assert [w.get(timeout=1) for w in waiters] == [False, False, False]
    assert signals._waiting == {}
