"""Wake-ups per channel (``wsgi_push/brokers/signals.py``), in-process with gevent."""

from __future__ import annotations

import time

import gevent
from gevent.hub import get_hub

from wsgi_push.brokers.signals import Signals, Spot, WaitResult


def test_a_reused_spot_times_out_then_wakes_on_notify() -> None:
    signals, spot, state = Signals(), Spot(0.05), {"ready": False}
    started = time.monotonic()
    assert (
        signals.wait({"c": 0}, lambda channel, position: state["ready"], spot) is WaitResult.TIMEOUT
    )
    assert time.monotonic() - started >= 0.04
    waiter = gevent.spawn(signals.wait, {"c": 0}, lambda channel, position: state["ready"], spot)
    gevent.sleep(0)
    state["ready"] = True
    signals.notify("c")
    assert waiter.get(timeout=1) is WaitResult.MESSAGE
    assert not signals.has_waiters("c")
    spot.close()


def test_a_stale_wake_up_of_a_reused_spot_keeps_it_parked() -> None:
    """A notify's callback can still be pending when its waiter's timer woke
    it and it parked again on the same spot; that late resume must not end
    the new wait."""
    signals, spot, state = Signals(), Spot(5.0), {"ready": False}
    waiter = gevent.spawn(signals.wait, {"c": 0}, lambda channel, position: state["ready"], spot)
    gevent.sleep(0)
    # The stale resume: the callback of a notify taken during the spot's previous wait.
    get_hub().loop.run_callback(signals._resume_in_hub, "c", {spot: spot.wait_number - 1}, None)
    gevent.idle()  # until the hub has run every pending callback, the stale resume included
    assert not waiter.dead and signals.has_waiters("c")
    state["ready"] = True
    signals.notify("c")
    assert waiter.get(timeout=1) is WaitResult.MESSAGE
    spot.close()


def test_a_timed_out_wait_reports_timeout_even_when_ready_is_unsure() -> None:
    """A heartbeat is due when the timer fires, whatever ``ready()`` says
    afterwards (a broker unsure of a channel answers True)."""
    signals, spot = Signals(), Spot(0.02)
    calls = []

    def behind(channel: str, position: int) -> bool:
        calls.append(1)
        return len(calls) > 1  # not behind before parking, "unsure" afterwards

    assert signals.wait({"c": 0}, behind, spot) is WaitResult.TIMEOUT
    spot.close()


def test_notify_all_ends_waits_that_are_not_ready() -> None:
    signals = Signals()
    spots = [Spot(30.0) for _ in range(3)]
    waiters = [
        gevent.spawn(signals.wait, {f"c{n}": 0}, lambda c, p: False, spots[n]) for n in range(3)
    ]
    gevent.sleep(0)
    signals.notify_all()
    assert [w.get(timeout=1) for w in waiters] == [WaitResult.WOKEN] * 3
    assert signals._waiting == {}


def test_a_spot_whose_on_notify_deals_with_the_news_stays_parked() -> None:
    """on_notify True: the greenlet is not resumed and the spot is back under
    its channel for the next publish; False: the wait ends with MESSAGE and
    leaves nothing behind in the channel's set."""
    signals, spot = Signals(), Spot(30.0)
    answers = [True, True, False]
    calls: list[bool] = []

    def on_notify() -> bool:
        calls.append(answers[len(calls)])
        return calls[-1]

    spot.on_notify = on_notify
    waiter = gevent.spawn(signals.wait, {"c": 0}, lambda channel, position: False, spot)
    gevent.sleep(0)
    for notified in (1, 2):
        signals.notify("c")
        gevent.idle()
        assert len(calls) == notified and not waiter.dead and signals.has_waiters("c")
    signals.notify("c")
    assert waiter.get(timeout=1) is WaitResult.MESSAGE
    assert calls == answers and not signals.has_waiters("c")
    spot.close()
