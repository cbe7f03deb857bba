"""Coalesced timeouts of parked spots (``wsgi_push/brokers/timeouts.py``), in-process."""

from __future__ import annotations

import time

import gevent
from gevent.hub import get_hub

from wsgi_push.brokers.signals import Signals, Spot, WaitResult
from wsgi_push.brokers.timeouts import MAX_GRID, grid_for, timeouts_of


def never_behind(channel: str, position: int) -> bool:
    return False


def test_a_timeout_ends_no_earlier_than_asked_and_at_most_a_grid_later() -> None:
    signals, spot = Signals(), Spot(0.2)
    started = time.monotonic()
    assert signals.wait({"c": 0}, never_behind, spot) is WaitResult.TIMEOUT
    elapsed = time.monotonic() - started
    # Never early; late by at most the grid, plus what a loaded 2-core CI
    # machine may take to run the greenlet once woken.
    assert 0.2 <= elapsed < 0.2 + grid_for(0.2) + 0.3
    spot.close()


def test_the_grid_is_a_sixteenth_of_the_timeout_up_to_a_quarter_second() -> None:
    assert grid_for(1.6) == 0.1
    assert grid_for(15.0) == MAX_GRID == 0.25


def test_spots_parked_close_together_share_one_bucket_and_time_out_together() -> None:
    signals = Signals()
    spots = [Spot(1.0) for _ in range(50)]
    waits = []
    for number, spot in enumerate(spots):
        waits.append(gevent.spawn(signals.wait, {f"c{number}": 0}, never_behind, spot))
        gevent.sleep(0.0005)
    gevent.sleep(0)
    # Parked within a few ms: one deadline rounded to the grid (two if they
    # straddle a grid line), so one wake-up of the process times them out.
    assert 1 <= len({spot.due for spot in spots}) <= 2
    assert [wait.get(timeout=3) for wait in waits] == [WaitResult.TIMEOUT] * 50
    assert all(spot.bucket is None for spot in spots)  # timed out: filed no more


def test_a_wake_up_restarts_the_timeout_of_the_next_park() -> None:
    """A notify leaves the spot filed under its first deadline; when that
    comes, the spot, parked again since, waits on for its own full timeout."""
    signals, spot, state = Signals(), Spot(0.4), {"ready": False}

    def behind(channel: str, position: int) -> bool:
        return state["ready"]

    first = gevent.spawn(signals.wait, {"c": 0}, behind, spot)
    gevent.sleep(0.2)
    state["ready"] = True
    signals.notify("c")
    assert first.get(timeout=1) is WaitResult.MESSAGE
    state["ready"] = False
    parked_again = time.monotonic()
    assert signals.wait({"c": 1}, behind, spot) is WaitResult.TIMEOUT
    assert time.monotonic() - parked_again >= 0.4
    spot.close()


def test_a_spot_filed_after_its_park_ended_keeps_no_loop_alive() -> None:
    signals, spot, state = Signals(), Spot(30.0), {"ready": False}
    wait = gevent.spawn(signals.wait, {"c": 0}, lambda c, p: state["ready"], spot)
    gevent.sleep(0)
    timeouts = timeouts_of(get_hub())
    assert timeouts._timer.ref  # a parked greenlet needs the timer to run
    state["ready"] = True
    signals.notify("c")
    assert wait.get(timeout=1) is WaitResult.MESSAGE
    # Still filed under its deadline, but nobody is parked: the loop may end.
    assert spot.bucket is not None and not timeouts._timer.ref
    spot.close()
    assert spot.bucket is None
