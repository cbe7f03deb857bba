"""RedisBroker against a real redis-server: ids, retention, gaps, atomicity,
presence across processes, and outages."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator

import gevent
import pytest
import redis

from tests.support.batches import batch_ids
from tests.support.redis_server import RedisServer
from tests.support.servers import ROOT, wait_until
from wsgi_push import BrokerUnavailable, MemoryBroker, RedisBroker


@pytest.fixture
def broker(redis_client: redis.Redis, redis_server: RedisServer) -> Iterator[RedisBroker]:
    broker = RedisBroker.from_url(redis_server.url, max_messages=5)
    yield broker
    broker.close()


def test_ids_start_at_one_and_increase_per_channel(broker: RedisBroker) -> None:
    assert [broker.publish("a", i) for i in range(3)] == [1, 2, 3]
    assert broker.publish("b", "x") == 1
    assert broker.last_id("a") == 3
    assert broker.last_id("never") == 0


def test_messages_keep_event_and_json_data(broker: RedisBroker) -> None:
    data = {"text": "héllo\nworld", "n": [1, 2.5, None, True]}
    broker.publish("news", data, event="headline")
    broker.publish("news", "plain text")
    first, second = broker.read("news", 0).messages
    assert (first.event, first.data) == ("headline", data)
    assert (second.event, second.data) == ("message", "plain text")
    assert first.published_at > 0


def test_publish_refuses_what_the_contract_refuses(broker: RedisBroker) -> None:
    for channel, event, data in [("..", None, 1), ("a b", None, 1), ("a", "gap", 1)]:
        with pytest.raises(ValueError):
            broker.publish(channel, data, event)
    with pytest.raises(ValueError):
        broker.publish("a", {1, 2})
    assert broker.last_id("a") == 0


def test_reads_follow_the_same_gap_rules_as_the_memory_broker(broker: RedisBroker) -> None:
    memory = MemoryBroker(max_messages=5)
    for position in range(0, 10):
        for after in range(0, position + 3):
            for limit in (None, 1, 2):
                expected = memory.read("c", after, limit)
                got = broker.read("c", after, limit)
                assert (batch_ids(got), got.gap, got.last_id) == (
                    batch_ids(expected),
                    expected.gap,
                    expected.last_id,
                ), (position, after, limit)
        memory.publish("c", position)
        broker.publish("c", position)


def test_retention_by_count_is_enforced_in_redis(
    broker: RedisBroker, redis_client: redis.Redis
) -> None:
    for i in range(12):
        broker.publish("kept", i)
    assert redis_client.zcard("wsgi_push:{kept}:log") == 5
    batch = broker.read("kept", 3)
    assert batch_ids(batch) == [8, 9, 10, 11, 12]
    assert batch.gap is not None and batch.gap.to_dict() == {"requested": 3, "first": 8, "last": 12}


def test_retention_by_age_is_enforced_in_redis(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    broker = RedisBroker.from_url(redis_server.url, max_age=0.3)
    broker.publish("old", "a")
    assert redis_client.pttl("wsgi_push:{old}:log") > 0
    wait_until(lambda: not redis_client.exists("wsgi_push:{old}:log"), 5, "the log to expire")
    batch = broker.read("old", 0)
    assert batch.messages == [] and broker.last_id("old") == 1
    assert broker.publish("old", "b") == 2, "ids outlive expired messages"
    broker.close()


def test_age_trims_older_messages_and_keeps_newer_ones(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    broker = RedisBroker.from_url(redis_server.url, max_age=0.5)
    broker.publish("mixed", "old")
    published = redis_client.zrange("wsgi_push:{mixed}:log", 0, 0)[0].split(b" ")[1]

    def redis_clock_past_publish() -> bool:
        seconds, micros = redis_client.time()
        return seconds * 1000 + micros // 1000 > int(published) + 300

    wait_until(redis_clock_past_publish, 5, "300 ms to pass on Redis's clock")
    broker.publish("mixed", "new")
    wait_until(lambda: batch_ids(broker.read("mixed", 0)) == [2], 5, "the old message to expire")
    assert broker.read("mixed", 1).gap is None, "the reader at 1 missed nothing retained"
    assert broker.read("mixed", 0).gap is None
    broker.close()


def test_ids_continue_after_the_app_restarts(
    redis_server: RedisServer, broker: RedisBroker
) -> None:
    broker.publish("news", 1)
    broker.publish("news", 2)
    restarted = RedisBroker.from_url(redis_server.url, max_messages=5)
    assert restarted.publish("news", 3) == 3
    assert batch_ids(restarted.read("news", 1)) == [2, 3]
    restarted.close()


def test_key_prefix_separates_deployments(redis_server: RedisServer, broker: RedisBroker) -> None:
    other = RedisBroker.from_url(redis_server.url, key_prefix="other")
    broker.publish("news", 1)
    assert other.publish("news", 1) == 1
    assert other.last_id("news") == 1 and broker.last_id("news") == 1
    other.close()


def test_concurrent_publishers_get_every_id_once(
    redis_server: RedisServer, broker: RedisBroker
) -> None:
    """Four brokers (like four processes) publish at once: ids 1..800, and a
    reader never sees an id before its message exists."""
    publishers = [RedisBroker.from_url(redis_server.url, max_messages=1000) for _ in range(4)]
    results: list[list[int]] = [[] for _ in publishers]
    missing: list[int] = []
    done = threading.Event()

    def publish_many(index: int) -> None:
        results[index] = [publishers[index].publish("race", {"from": index}) for _ in range(200)]

    def check_visibility() -> None:
        while not done.is_set():
            last = broker.last_id("race")
            if last and batch_ids(broker.read("race", last - 1))[:1] != [last]:
                missing.append(last)

    threads = [threading.Thread(target=publish_many, args=(i,)) for i in range(4)]
    reader = threading.Thread(target=check_visibility)
    reader.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    done.set()
    reader.join(30)
    assert sorted(sum(results, [])) == list(range(1, 801))
    assert all(result == sorted(result) for result in results)
    assert missing == []
    for publisher in publishers:
        publisher.close()


def test_from_url_connects_over_a_unix_socket(
    redis_server: RedisServer, broker: RedisBroker
) -> None:
    over_socket = RedisBroker.from_url(f"unix://{redis_server.unix_socket}?db=0")
    broker.publish("news", "tcp")
    assert over_socket.publish("news", "unix") == 2
    over_socket.close()


def test_presence_is_summed_over_processes(redis_server: RedisServer, broker: RedisBroker) -> None:
    other = RedisBroker.from_url(redis_server.url)
    broker.add_subscriber("room")
    assert broker.subscriber_count("room") == 1
    other.add_subscriber("room")
    other.add_subscriber("room")
    assert other.subscriber_count("room") == 3
    assert broker.subscriber_count("room") == 3
    other.remove_subscriber("room")
    assert other.subscriber_count("room") == 2
    other.close()
    assert broker.subscriber_count("room") == 1
    broker.remove_subscriber("room")
    assert broker.subscriber_count("room") == 0


def test_a_burst_of_joins_is_written_in_the_background(
    redis_server: RedisServer, broker: RedisBroker
) -> None:
    """Joining does no I/O; the presence keeper writes the burst for others to see."""
    other = RedisBroker.from_url(redis_server.url)
    for _ in range(100):
        broker.add_subscriber("burst")
    # gevent.sleep(0) lets the keeper greenlet run in this unpatched test process.
    wait_until(lambda: gevent.sleep(0) or other.subscriber_count("burst") == 100, 5, "the burst")
    other.close()


_CRASHING_PROCESS = """
import sys
from wsgi_push import RedisBroker
broker = RedisBroker.from_url(sys.argv[1], presence_ttl=1.0)
broker.add_subscriber("room")
broker.add_subscriber("room")
broker.subscriber_count("room")  # writes this process's count now
print("joined", flush=True)
sys.stdin.read()
"""


def test_presence_of_a_crashed_process_expires(
    redis_server: RedisServer, broker: RedisBroker
) -> None:
    broker.add_subscriber("room")
    process = subprocess.Popen(
        [sys.executable, "-c", _CRASHING_PROCESS, redis_server.url],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stdout.readline() == "joined\n"
        assert broker.subscriber_count("room") == 3
        process.kill()  # no clean-up runs: a crash
        process.wait(10)
        wait_until(lambda: broker.subscriber_count("room") == 1, 5, "stale presence to expire")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_outage_raises_broker_unavailable_and_recovery_keeps_ids() -> None:
    server = RedisServer(persistent=True).start()
    try:
        broker = RedisBroker.from_url(server.url)
        assert broker.publish("news", "before") == 1
        broker.add_subscriber("news")
        server.stop()
        with pytest.raises(BrokerUnavailable) as raised:
            broker.publish("news", "during")
        assert raised.value.status == 503
        assert ("Retry-After", "1") in raised.value.headers
        with pytest.raises(BrokerUnavailable):
            broker.read("news", 0)
        with pytest.raises(BrokerUnavailable):
            broker.last_id("news")
        assert broker.subscriber_count("news") == 1, "presence falls back to this process"
        server.start()
        assert broker.publish("news", "after") == 2
        assert [m.data for m in broker.read("news", 0).messages] == ["before", "after"]
        broker.close()
    finally:
        server.close()


# A process whose waiters rely on notifications alone: ``wait`` without a
# timeout returns only when the listener relays a message or catches up.
_NOTIFIED_WAITERS = """
from gevent import monkey; monkey.patch_all()
import json, sys
import gevent
from wsgi_push import RedisBroker
url, channel, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
broker = RedisBroker.from_url(url)

def follow():
    position, received = 0, []
    while position < total:
        broker.wait({channel: position}, None)
        batch = broker.read(channel, position)
        received += [message.id for message in batch.messages]
        position = batch.last_id
    return received

waiters = [gevent.spawn(follow) for _ in range(5)]
gevent.joinall(waiters, timeout=20)
print(json.dumps([waiter.value for waiter in waiters]), flush=True)
"""


def test_notifications_lost_while_the_listener_was_down_cost_latency_never_data(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    """The listener's pub/sub connection is killed, and messages are published
    while it can't subscribe again and while it reconnects: waiters woken
    only by notifications still get every message once, in order. (Retention
    holds them all: a waiter that reads late must not lose any to trimming.)"""
    total, held_down = 15, 5
    broker = RedisBroker.from_url(redis_server.url, max_messages=1000)
    process = subprocess.Popen(
        [sys.executable, "-c", _NOTIFIED_WAITERS, redis_server.url, "hints", str(total)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )

    def listeners() -> int:
        count: int = redis_client.pubsub_numsub("wsgi_push:notify")[0][1]
        return count

    try:
        wait_until(lambda: listeners() == 1, 10, "the process's listener to subscribe")
        redis_client.execute_command("ACL", "SETUSER", "default", "-subscribe")
        try:
            assert redis_client.client_kill_filter(_type="pubsub") == 1
            for n in range(1, held_down + 1):
                assert broker.publish("hints", n) == n
            assert listeners() == 0, "these notifications reached nobody"
        finally:
            redis_client.execute_command("ACL", "SETUSER", "default", "+subscribe")
        for n in range(held_down + 1, total + 1, 2):
            wait_until(lambda: listeners() == 1, 10, "the listener to subscribe again")
            assert redis_client.client_kill_filter(_type="pubsub") == 1
            for message_id in range(n, min(n + 2, total + 1)):
                assert broker.publish("hints", message_id) == message_id
        output, _ = process.communicate(timeout=30)
    finally:
        broker.close()
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert json.loads(output) == [list(range(1, total + 1))] * 5


_WAITER_ON_AN_OLD_CHANNEL = """
from gevent import monkey; monkey.patch_all()
import sys, time, gevent
from wsgi_push import RedisBroker
broker = RedisBroker.from_url(sys.argv[1], max_cached_channels=2)
broker.wait({"warm-up": 0}, 0.01)  # starts the listener
deadline = time.monotonic() + 10
while not broker.client.pubsub_numsub("wsgi_push:notify")[0][1]:
    assert time.monotonic() < deadline, "the listener never subscribed"
    gevent.sleep(0.01)
waiter = gevent.spawn(broker.wait, {"kept": 0}, 30.0)
gevent.sleep(0)  # parked on "kept"
for n in range(5):  # newer channels, past max_cached_channels
    broker.read(f"other-{n}", 0)
assert sorted(broker._channels) == ["other-3", "other-4"], "the bound holds"
print("parked", flush=True)
started = time.monotonic()
print(waiter.get(timeout=10).value, round(time.monotonic() - started, 3), flush=True)
"""


def test_a_waiter_whose_channel_record_was_dropped_still_wakes_on_a_publish(
    redis_server: RedisServer, broker: RedisBroker
) -> None:
    """More channels than ``max_cached_channels`` are used while a greenlet
    waits on the oldest, so its record is dropped: the wait still wakes on
    the publish and reports a message, not a timeout or nothing."""
    process = subprocess.Popen(
        [sys.executable, "-c", _WAITER_ON_AN_OLD_CHANNEL, redis_server.url],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    try:
        assert process.stdout.readline() == "parked\n"
        assert broker.publish("kept", "news") == 1
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    woken, seconds = output.split()
    assert woken == "message" and float(seconds) < 5, output


def test_waiting_needs_gevent_monkey_patching(broker: RedisBroker) -> None:
    with pytest.raises(RuntimeError, match="monkey"):
        broker.wait({"news": 0}, 0.1)


def test_importing_wsgi_push_does_not_need_redis() -> None:
    script = (
        "import sys; sys.modules['redis'] = None\n"
        "import wsgi_push\n"
        "try:\n"
        "    wsgi_push.RedisBroker('redis://127.0.0.1:1/0')\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert "pip install 'wsgi_push[redis]'" in result.stdout, result.stderr


def test_flask_push_uses_redis_from_config(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    import flask

    from wsgi_push.flask import Push

    app = flask.Flask(__name__)
    app.config["PUSH_REDIS_URL"] = redis_server.url
    push = Push(app)
    with app.app_context():
        assert isinstance(push.broker, RedisBroker)
        assert push.publish("news", "hi") == 1
    assert redis_client.get("wsgi_push:{news}:last") == b"1"
    push_broker = app.extensions["wsgi_push"].broker
    push_broker.close()
