"""The example app's rate-swinging feed (``example_app/publishers.py``), in-process."""

from __future__ import annotations

import pytest

from example_app import publishers
from example_app.publishers import SWING, RateFeed


class Clock:
    """A settable stand-in for ``time.monotonic``."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(publishers.time, "monotonic", clock)
    return clock


def test_a_fixed_rate_never_changes_by_itself(clock: Clock) -> None:
    feed = RateFeed(lambda *args: 1, rate=10.0, swing_seconds=5.0)
    assert feed.schedule() == (10.0, float("inf"))
    clock.now += 3600
    assert feed.schedule() == (10.0, float("inf"))


def test_swing_walks_from_100_per_second_to_1_per_minute_and_back(clock: Clock) -> None:
    feed = RateFeed(lambda *args: 1, rate=1.0, swing_seconds=5.0)
    feed.set_rate(None)
    seen = []
    for _step in range(len(SWING) + 1):
        rate, until_change = feed.schedule()
        seen.append(rate)
        assert until_change == pytest.approx(5.0)
        clock.now += 5.0
    assert seen == [100.0, 10.0, 1.0, 0.1, 1 / 60, 0.1, 1.0, 10.0, 100.0]


@pytest.mark.parametrize("rate", [0.0, -1.0, 5000.0])
def test_an_absurd_rate_is_refused(rate: float) -> None:
    feed = RateFeed(lambda *args: 1, rate=1.0, swing_seconds=5.0)
    with pytest.raises(ValueError):
        feed.set_rate(rate)
    assert feed.fixed_rate == 1.0
