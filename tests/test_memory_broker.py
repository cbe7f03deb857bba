"""MemoryBroker: ids, retention, gap rules, greenlet wake-ups, presence."""

from __future__ import annotations

import gevent
import pytest

from tests.support.batches import batch_ids
from wsgi_push import Gap, MemoryBroker
from wsgi_push.brokers.base import WaitResult, plan_read


def test_ids_strictly_increase_per_channel() -> None:
    broker = MemoryBroker()
    assert [broker.publish("a", n) for n in range(3)] == [1, 2, 3]
    assert broker.publish("b", "x") == 1
    assert broker.last_id("a") == 3 and broker.last_id("nothing") == 0


def test_published_data_is_a_copy() -> None:
    broker = MemoryBroker()
    data = {"list": [1]}
    broker.publish("a", data)
    data["list"].append(2)
    assert broker.read("a", 0).messages[0].data == {"list": [1]}


def test_retention_by_count_keeps_the_newest() -> None:
    broker = MemoryBroker(max_messages=3)
    for n in range(5):
        broker.publish("a", n)
    batch = broker.read("a", 0)
    assert batch_ids(batch) == [3, 4, 5] and batch.gap is None and batch.last_id == 5


def test_retention_by_age(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr("wsgi_push.brokers.memory.time.time", lambda: clock[0])
    monkeypatch.setattr("wsgi_push.brokers.history.time.time", lambda: clock[0])
    broker = MemoryBroker(max_age=10)
    broker.publish("a", "old")
    clock[0] += 6
    broker.publish("a", "new")
    clock[0] += 6
    batch = broker.read("a", 0)
    assert [m.data for m in batch.messages] == ["new"]
    # The client that saw nothing after 0 asked for "everything retained": no gap.
    assert batch.gap is None
    clock[0] += 20
    assert broker.read("a", 1).gap == Gap(1, 0, 2)
    assert broker.read("a", 2).gap is None


def test_read_after_position_and_limit() -> None:
    broker = MemoryBroker()
    for n in range(10):
        broker.publish("a", n)
    assert batch_ids(broker.read("a", 7)) == [8, 9, 10]
    limited = broker.read("a", 2, limit=3)
    assert batch_ids(limited) == [3, 4, 5] and limited.last_id == 5
    caught_up = broker.read("a", 10)
    assert not caught_up and caught_up.last_id == 10


@pytest.mark.parametrize(
    ("after", "first", "last", "expected"),
    [
        (0, 5, 9, (0, None)),  # everything retained, never a gap
        (4, 5, 9, (4, None)),  # exactly continuous
        (3, 5, 9, (0, Gap(3, 5, 9))),  # 4 is gone
        (10, 5, 9, (0, Gap(10, 5, 9))),  # ahead of the channel (broker restarted)
        (9, 0, 9, (9, None)),  # all expired but the client saw the last one
        (8, 0, 9, (0, Gap(8, 0, 9))),  # all expired, 9 lost
        (3, 0, 0, (0, Gap(3, 0, 0))),  # empty channel
    ],
)
def test_gap_rules(after: int, first: int, last: int, expected: tuple[int, Gap | None]) -> None:
    assert plan_read(after, first, last) == expected


def test_gap_then_all_retained_messages() -> None:
    broker = MemoryBroker(max_messages=2)
    for n in range(5):
        broker.publish("a", n)
    behind = broker.read("a", 1)
    assert behind.gap == Gap(1, 4, 5) and batch_ids(behind) == [4, 5]
    ahead = broker.read("a", 50)
    assert ahead.gap == Gap(50, 4, 5) and batch_ids(ahead) == [4, 5]
    unknown = broker.read("new", 7)
    assert unknown.gap == Gap(7, 0, 0) and unknown.messages == [] and unknown.last_id == 0


def test_wait_wakes_every_waiter_on_publish() -> None:
    broker = MemoryBroker()
    waiters = [gevent.spawn(broker.wait, {"a": 0}, 5) for _ in range(50)]
    gevent.idle()
    broker.publish("a", "hello")
    assert len(gevent.joinall(waiters, timeout=2, raise_error=True)) == 50
    assert [w.value for w in waiters] == [WaitResult.MESSAGE] * 50


def test_wait_returns_at_once_when_a_message_exists_and_timeout_otherwise() -> None:
    broker = MemoryBroker()
    broker.publish("a", 1)
    assert broker.wait({"a": 0}, 5) is WaitResult.MESSAGE
    assert broker.wait({"a": 1}, 0.01) is WaitResult.TIMEOUT
    assert broker.signals._waiting == {}  # no event left behind by a timed-out waiter


def test_one_wait_follows_many_channels_with_one_spot() -> None:
    broker = MemoryBroker()
    spot = broker.waiting_spot(5.0)
    waiter = gevent.spawn(broker.wait, {"a": 0, "b": 0, "c": 0}, 5.0, spot)
    gevent.idle()
    assert all(broker.signals.has_waiters(channel) for channel in "abc")
    broker.publish("b", "hello")
    assert waiter.get(timeout=2) is WaitResult.MESSAGE
    assert broker.signals._waiting == {}  # left every channel's set
    spot.close()


def test_wake_all_ends_waits_without_a_message() -> None:
    broker = MemoryBroker()
    waiter = gevent.spawn(broker.wait, {"a": 0}, 30)
    gevent.idle()
    broker.wake_all()
    assert waiter.get(timeout=2) is WaitResult.WOKEN


def test_a_woken_spot_ends_this_wait_and_every_later_one() -> None:
    broker = MemoryBroker()
    spot = broker.waiting_spot(30.0)
    waiter = gevent.spawn(broker.wait, {"a": 0}, 30.0, spot)
    gevent.idle()
    spot.wake()
    assert waiter.get(timeout=2) is WaitResult.WOKEN
    assert broker.wait({"a": 0}, 30.0, spot) is WaitResult.WOKEN
    spot.close()


def test_publish_many_is_all_or_nothing() -> None:
    broker = MemoryBroker()
    assert broker.publish_many([("a", 1, None), ("b", "x", "tick"), ("a", 2, None)]) == [1, 1, 2]
    with pytest.raises(ValueError, match="message 1"):
        broker.publish_many([("a", 3, None), ("a", 4, "gap")])
    assert broker.last_id("a") == 2 and broker.published == 3


def test_presence_counts() -> None:
    broker = MemoryBroker()
    broker.add_subscriber("room")
    broker.add_subscriber("room")
    assert broker.subscriber_count("room") == 2
    broker.remove_subscriber("room")
    assert broker.subscriber_count("room") == 1
    broker.remove_subscriber("room")
    assert broker.subscriber_count("room") == 0 and "room" not in broker._subscribers


@pytest.mark.parametrize(
    ("channel", "data", "event"),
    [("a/b", 1, None), ("ok", object(), None), ("ok", 1, "gap"), ("ok", 1, "a\nb")],
)
def test_publish_refuses_bad_input_and_keeps_history(
    channel: str, data: object, event: str | None
) -> None:
    broker = MemoryBroker()
    broker.publish("ok", "kept")
    with pytest.raises(ValueError):
        broker.publish(channel, data, event)
    assert [m.data for m in broker.read("ok", 0).messages] == ["kept"]
    assert broker.last_id("ok") == 1


def test_a_caught_up_reader_gets_the_newest_message_shared_and_unchanged() -> None:
    broker = MemoryBroker(max_messages=2)
    for n in range(3):
        broker.publish("c", n)
    first, second = broker.read("c", 2), broker.read("c", 2)
    assert first is second  # one batch for every caught-up subscriber
    assert batch_ids(first) == [3] and first.gap is None and first.last_id == 3
    assert batch_ids(broker.read("c", 1)) == [2, 3]
    assert broker.read("c", 0).messages == broker.read("c", 1).messages
