"""Redis: one numbered queue per channel shared by every process and host.

::

    from wsgi_push import PushMiddleware, RedisBroker

    broker = RedisBroker.from_url("redis://127.0.0.1:6379/0", max_messages=1000)
    app.wsgi_app = PushMiddleware(app.wsgi_app, broker=broker)

    # from a script, a cron job or another service: same ids, same subscribers
    RedisBroker.from_url("redis://127.0.0.1:6379/0").publish("news", {"title": "hi"})

Per channel ``C`` (the braces keep a channel's keys on one cluster slot):

``<prefix>:{C}:last``  the newest id ever assigned (``INCR``); never expires,
                       so ids are never reused.
``<prefix>:{C}:log``   sorted set of retained messages, score = id, member =
                       ``"<id> <published ms> <JSON [event, data]>"``.

One Lua script assigns the id, stores the message, trims by count and age
(timestamps from Redis's own clock) and announces ``"<id> <C>"`` on
``<prefix>:notify`` -- so no reader ever sees id N before message N. Reading
"everything after N" is another script: one round trip. Each process runs
one listener greenlet on one pub/sub connection; a notification only wakes
local waiters, who then read from Redis through a small per-channel cache
(one Redis read per channel per wake-up, and the same :class:`Message`
objects for every local subscriber). Notifications are hints: after the
listener (re)subscribes it re-reads every cached channel's last id, so a
lost notification costs latency, never data. See ``docs/redis.md``.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import gevent
from gevent.event import Event
from gevent.lock import Semaphore

from ..errors import BrokerUnavailable
from ..message import Message, dumps
from .base import Batch, Broker, make_batch, plan_read
from .history import History
from .signals import Signals, Spot, WaitResult

logger = logging.getLogger("wsgi_push")

_NOW_MS = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

_TRIM_AGE = """
local function trim_age(log, max_age_ms, now)
  if max_age_ms <= 0 then return end
  local cutoff = now - max_age_ms
  while true do
    local oldest = redis.call('ZRANGE', log, 0, 63)
    local expired = 0
    for _, member in ipairs(oldest) do
      if tonumber(string.match(member, '^%d+ (%d+) ')) >= cutoff then break end
      expired = expired + 1
    end
    if expired > 0 then redis.call('ZREMRANGEBYRANK', log, 0, expired - 1) end
    if expired < 64 then return end
  end
end
"""

# KEYS: last, log. ARGV: payload, max_messages, max_age_ms (0: none),
# notify channel, channel name. Returns {id, published ms}.
_PUBLISH = (
    _NOW_MS
    + _TRIM_AGE
    + """
local id = redis.call('INCR', KEYS[1])
local now = now_ms()
redis.call('ZADD', KEYS[2], id, string.format('%d %d %s', id, now, ARGV[1]))
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -tonumber(ARGV[2]) - 1)
local max_age_ms = tonumber(ARGV[3])
if max_age_ms > 0 then
  trim_age(KEYS[2], max_age_ms, now)
  redis.call('PEXPIRE', KEYS[2], max_age_ms)
end
redis.call('PUBLISH', ARGV[4], string.format('%d %s', id, ARGV[5]))
return {id, now}
"""
)

# KEYS: last, log. ARGV: after, limit (-1: all), max_age_ms (0: none).
# Returns {last id, oldest retained id (0: none), members after `after`...}.
_READ = (
    _NOW_MS
    + _TRIM_AGE
    + """
trim_age(KEYS[2], tonumber(ARGV[3]), now_ms())
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
local found = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. ARGV[1], '+inf', 'LIMIT', 0, ARGV[2])
table.insert(found, 1, tonumber(oldest[2] or '0'))
table.insert(found, 1, last)
return found
"""
)

# KEYS: live processes (zset, score = expiry ms), this process's counts (hash).
# ARGV: process id, counts key prefix, ttl ms, replace ('1': rewrite all),
# channel to count ('': none), then channel/count pairs.
# Returns the channel's subscribers summed over live processes.
_PRESENCE = (
    _NOW_MS
    + """
local now = now_ms()
local ttl = tonumber(ARGV[3])
if ARGV[4] == '1' then redis.call('DEL', KEYS[2]) end
for i = 6, #ARGV, 2 do
  if tonumber(ARGV[i + 1]) > 0 then
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  else
    redis.call('HDEL', KEYS[2], ARGV[i])
  end
end
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if ARGV[5] == '' then return 0 end
local total = 0
for _, process in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  total = total + tonumber(redis.call('HGET', ARGV[2] .. process, ARGV[5]) or '0')
end
return total
"""
)

_LISTEN_TIMEOUT = 5.0
_RECONNECT_DELAYS = (0.05, 2.0)


def import_redis() -> ModuleType:
    """The ``redis`` package, or an ImportError that says how to install it."""
    try:
        import redis
    except ImportError:
        raise ImportError(
            "RedisBroker needs the redis package: pip install 'wsgi_push[redis]'"
        ) from None
    return redis


class _LocalChannel:
    """What this process knows of one channel: ``known_last`` (from
    notifications and reads) and ``recent``, a small cache of the newest
    messages shared by all local subscribers. ``first_retained`` is Redis's
    oldest retained id at the latest read. ``epoch`` is the listener session
    the knowledge dates from; the cache is trusted only within it."""

    __slots__ = ("recent", "known_last", "first_retained", "epoch", "lock")

    def __init__(self, cache_messages: int, max_age: float | None) -> None:
        self.recent = History(cache_messages, max_age)
        self.known_last = 0
        self.first_retained = 0
        self.epoch = -1
        self.lock = Semaphore()

    def covers(self, after: int) -> bool:
        """Whether the cache holds every retained message after ``after``
        (position 0, "everything retained", needs Redis's oldest one too)."""
        recent = self.recent
        if not recent.retained:
            # Known in full without a message only if it never had one.
            return recent.last_id == 0 and self.first_retained == 0
        if after == 0:
            return recent.first_id == self.first_retained
        return recent.first_id - 1 <= after <= recent.last_id

    def remember(self, messages: list[Message]) -> None:
        """Merge freshly read messages (contiguous, in id order) into the cache."""
        if not messages or messages[-1].id <= self.recent.last_id:
            return
        if messages[0].id != self.recent.last_id + 1:
            self.recent = History(self.recent.max_messages, self.recent.max_age)
        for message in messages:
            if message.id > self.recent.last_id:
                self.recent.append(message)


class RedisBroker(Broker):
    """A broker on Redis for many processes and hosts.

    :param url_or_client: a ``redis://``, ``rediss://`` or ``unix://`` URL,
        or a ``redis.Redis`` client (then ``redis_options`` must be empty).
    :param key_prefix: prefix of every key and of the pub/sub channel.
    :param max_messages: retained messages per channel (enforced in Redis).
    :param max_age: retained seconds per message, or None (enforced in Redis).
    :param presence_ttl: seconds after which a vanished process's
        subscribers stop counting; live processes refresh every third of it.
    :param poll_interval: while the listener is disconnected, waiters look
        at Redis this often instead of relying on notifications.
    :param cache_messages: newest messages per channel kept in this process
        to serve a wake-up of many local subscribers from one Redis read.
    :param max_cached_channels: channels this process keeps such a cache for.
    :param redis_options: passed to the connection pool built from the URL
        (defaults: ``max_connections=8``, fail-fast timeouts, one immediate
        retry, so an outage surfaces at once as
        :class:`~wsgi_push.BrokerUnavailable`).

    Needs gevent's monkey patching (``gunicorn -k gevent``, ``python -m
    wsgi_push``) wherever subscribers wait; publishing works anywhere.
    """

    def __init__(
        self,
        url_or_client: Any,
        key_prefix: str = "wsgi_push",
        max_messages: int = 1000,
        max_age: float | None = None,
        *,
        presence_ttl: float = 30.0,
        poll_interval: float = 1.0,
        cache_messages: int = 64,
        max_cached_channels: int = 10_000,
        **redis_options: Any,
    ) -> None:
        super().__init__(max_messages, max_age)
        redis = import_redis()
        if isinstance(url_or_client, str):
            self.client = redis.Redis(
                connection_pool=_pool_from_url(redis, url_or_client, redis_options)
            )
            self._owns_client = True
        elif redis_options:
            raise TypeError("redis_options apply only when RedisBroker is given a URL")
        else:
            self.client = url_or_client
            self._owns_client = False
        self.key_prefix = key_prefix
        self.presence_ttl = presence_ttl
        self.poll_interval = poll_interval
        self.cache_messages = min(cache_messages, max_messages)
        self.max_cached_channels = max_cached_channels
        self._outages = (
            redis.ConnectionError,
            redis.TimeoutError,
            redis.exceptions.ReadOnlyError,
        )
        self._publish_script = self.client.register_script(_PUBLISH)
        self._read_script = self.client.register_script(_READ)
        self._presence_script = self.client.register_script(_PRESENCE)
        self._max_age_ms = 0 if max_age is None else max(1, round(max_age * 1000))
        self._notify_channel = f"{key_prefix}:notify"
        self._processes_key = f"{key_prefix}:processes"
        self._counts_prefix = f"{key_prefix}:presence:"
        self._start_process()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisBroker:
        """A broker on the Redis at ``url`` (``redis://``, ``rediss://``, ``unix://``).

        ``options`` are :class:`RedisBroker` parameters and redis-py
        connection options (``socket_timeout``, ``max_connections`` ...).
        """
        return cls(url, **options)

    def _start_process(self) -> None:
        """Reset what belongs to one process (again after a fork)."""
        self._pid = os.getpid()
        self.process_id = f"{socket.gethostname()}:{self._pid}:{secrets.token_hex(4)}"
        self._channels: dict[str, _LocalChannel] = {}
        self._listener: gevent.Greenlet | None = None
        self._presence_keeper: gevent.Greenlet | None = None
        self._presence_dirty: set[str] = set()
        self._presence_pending = Event()
        self._listening = False
        self._epoch = 0

    def _same_process(self) -> None:
        if self._pid != os.getpid():
            self._start_process()
            self._subscribers.clear()
            self.signals = Signals()

    # Keys ---------------------------------------------------------------------

    def _keys(self, channel: str) -> list[str]:
        return [f"{self.key_prefix}:{{{channel}}}:last", f"{self.key_prefix}:{{{channel}}}:log"]

    @contextmanager
    def _redis_call(self) -> Iterator[None]:
        """Turn Redis being unreachable into :class:`BrokerUnavailable`."""
        try:
            yield
        except self._outages as error:
            raise BrokerUnavailable(f"Redis is unavailable: {error}") from error

    # The numbered queue -------------------------------------------------------

    def _append(self, channel: str, event: str, data_json: str) -> int:
        """One Lua script: id, store, trim, notify.

        Raises :class:`BrokerUnavailable` when Redis can't be reached; then the
        message may or may not have been stored (as with any remote call).
        """
        payload = f"[{dumps(event)},{data_json}]"  # what dumps([event, data]) gives
        args = [payload, self.max_messages, self._max_age_ms, self._notify_channel, channel]
        with self._redis_call():
            message_id, _ = self._publish_script(keys=self._keys(channel), args=args)
        return int(message_id)

    def last_id(self, channel: str) -> int:
        with self._redis_call():
            last = self.client.get(self._keys(channel)[0])
        return int(last or 0)

    def read(self, channel: str, after: int, limit: int | None = None) -> Batch:
        local = self._local(channel)
        batch = self._read_cached(local, after, limit)
        if batch is None:
            # One Redis read per channel at a time; the others use its result.
            with local.lock:
                batch = self._read_cached(local, after, limit)
                if batch is None:
                    batch = self._read_redis(channel, local, after, limit)
        return batch

    def _read_cached(self, local: _LocalChannel, after: int, limit: int | None) -> Batch | None:
        """Serve from this process's cache when it provably holds the answer:
        the listener is up since the cache was filled, nothing newer is known,
        and the cache holds everything after ``after``."""
        recent = local.recent
        if not self._listening or local.epoch != self._epoch:
            return None
        recent.expire()
        if recent.last_id != local.known_last or not local.covers(after):
            return None
        return recent.read(after, limit)

    def _read_redis(
        self, channel: str, local: _LocalChannel, after: int, limit: int | None
    ) -> Batch:
        epoch = self._epoch if self._listening else -1
        recent = local.recent
        # A subscriber the cache already covers only needs what is newer.
        extend = self._listening and epoch == local.epoch and local.covers(after)
        start = recent.last_id if extend else after
        last, first, messages = self._fetch(channel, start, None if extend else limit)
        local.known_last = max(local.known_last, last)
        local.first_retained = first
        local.epoch = epoch
        local.remember(messages)
        cached = self._read_cached(local, after, limit)
        if cached is not None:
            return cached
        begin, gap = plan_read(after, first, last)
        # Retained ids are contiguous, so what was fetched after ``start`` is
        # also everything after ``begin`` unless retained ids lie between.
        if begin != start and first and start >= first:
            last, first, messages = self._fetch(channel, begin, limit)
            begin, gap = plan_read(after, first, last)
        return make_batch(messages[:limit], gap, after, last)

    def _fetch(self, channel: str, after: int, limit: int | None) -> tuple[int, int, list[Message]]:
        """``(last id, oldest retained id, messages after `after`)`` in one round trip."""
        args = [after, -1 if limit is None else limit, self._max_age_ms]
        with self._redis_call():
            last, first, *members = self._read_script(keys=self._keys(channel), args=args)
        return int(last), int(first), [_decode(channel, member) for member in members]

    def _local(self, channel: str) -> _LocalChannel:
        """This process's record of ``channel``, least recently used dropped first."""
        self._same_process()
        local = self._channels.pop(channel, None)
        if local is None:
            local = _LocalChannel(self.cache_messages, self.max_age)
            while len(self._channels) >= self.max_cached_channels:
                del self._channels[next(iter(self._channels))]
        self._channels[channel] = local
        return local

    # Waiting: one listener per process -----------------------------------------

    def wait(
        self, positions: Mapping[str, int], timeout: float | None, spot: Spot | None = None
    ) -> WaitResult:
        for channel in positions:
            self._local(channel)  # known from now on: notifications update it
        self._start_listener()
        if self._listening:
            return super().wait(positions, timeout, spot)
        # No notifications right now: look at Redis again soon.
        poll = self.poll_interval if timeout is None else min(timeout, self.poll_interval)
        return self.pause(positions, poll, spot)

    def behind(self, channel: str, position: int) -> bool:
        # By name: the record may be dropped (past max_cached_channels)
        # while we wait, and a dropped one hears of nothing: read to know.
        # Without the listener nothing is heard of either.
        record = self._channels.get(channel)
        return record is None or record.known_last > position or not self._listening

    def _start_listener(self) -> None:
        if self._listener is None:
            if not _socket_patched():
                raise RuntimeError(
                    "RedisBroker subscribers need gevent's monkey patching: run under "
                    "gunicorn -k gevent or python -m wsgi_push, or call "
                    "gevent.monkey.patch_all() first"
                )
            self._listener = gevent.spawn(self._listen)

    def _listen(self) -> None:
        """Relay notifications to local waiters forever, reconnecting with back-off."""
        delay = _RECONNECT_DELAYS[0]
        while True:
            pubsub = self.client.pubsub()
            try:
                pubsub.subscribe(self._notify_channel)
                while True:
                    notification = pubsub.get_message(timeout=_LISTEN_TIMEOUT)
                    if notification is None:
                        continue
                    if notification["type"] == "subscribe":
                        self._catch_up()
                        delay = _RECONNECT_DELAYS[0]
                    elif notification["type"] == "message":
                        self._notified(_text(notification["data"]))
            except self._outages as error:
                logger.warning("wsgi_push: Redis listener disconnected (%s); reconnecting", error)
            except Exception:
                # The listener must outlive surprises, or waiters fall back to polling.
                logger.exception("wsgi_push: Redis listener failed; reconnecting")
            finally:
                self._listening = False
                pubsub.close()
            gevent.sleep(delay)
            delay = min(delay * 2, _RECONNECT_DELAYS[1])

    def _notified(self, notification: str) -> None:
        message_id, _, channel = notification.partition(" ")
        local = self._channels.get(channel)
        if local is not None:
            local.known_last = max(local.known_last, int(message_id))
        self.signals.notify(channel)

    def _catch_up(self) -> None:
        """Just (re)subscribed: anything published while not listening went
        unannounced, so re-read every known channel's last id (one pipelined
        round trip), then trust the caches again and wake whoever is behind."""
        self._epoch += 1
        channels = list(self._channels.items())
        pipeline = self.client.pipeline(transaction=False)
        for channel, _ in channels:
            pipeline.get(self._keys(channel)[0])
        lasts = pipeline.execute() if channels else []
        for (channel, local), last in zip(channels, lasts, strict=True):
            if int(last or 0) > local.known_last:
                local.known_last = int(last)
                self.signals.notify(channel)
            local.epoch = self._epoch
        self._listening = True

    # Presence across processes ------------------------------------------------

    def add_subscriber(self, channel: str) -> None:
        self._same_process()
        super().add_subscriber(channel)
        self._presence_changed(channel)

    def remove_subscriber(self, channel: str) -> None:
        self._same_process()
        super().remove_subscriber(channel)
        self._presence_changed(channel)

    def _presence_changed(self, channel: str) -> None:
        """Note the change; the keeper writes a burst of them in one round
        trip, so 1,000 joins don't queue on the connection pool."""
        self._presence_dirty.add(channel)
        self._presence_pending.set()
        self._start_presence_keeper()

    def subscriber_count(self, channel: str) -> int:
        """Subscribers of ``channel`` in every live process.

        Also records this process's own count for it first. While Redis is
        unreachable, answers this process's count.
        """
        self._same_process()
        local_count = self._subscribers.get(channel, 0)
        self._start_presence_keeper()
        try:
            with self._redis_call():
                return int(self._presence(channel, [(channel, local_count)]))
        except BrokerUnavailable:
            return local_count

    def _presence(self, channel: str, counts: list[tuple[str, int]], replace: bool = False) -> Any:
        args: list[Any] = [
            self.process_id,
            self._counts_prefix,
            round(self.presence_ttl * 1000),
            "1" if replace else "0",
            channel,
        ]
        for pair in counts:
            args.extend(pair)
        keys = [self._processes_key, self._counts_prefix + self.process_id]
        return self._presence_script(keys=keys, args=args)

    def _start_presence_keeper(self) -> None:
        if self._presence_keeper is None:
            self._presence_keeper = gevent.spawn(self._keep_presence)

    def _keep_presence(self) -> None:
        """Write changed counts as they come (batched), and rewrite them all
        every third of ``presence_ttl``, which keeps them alive and repairs
        them after an outage."""
        while True:
            changed = self._presence_pending.wait(self.presence_ttl / 3)
            self._presence_pending.clear()
            dirty, self._presence_dirty = self._presence_dirty, set()
            counts = (
                [(channel, self._subscribers.get(channel, 0)) for channel in dirty]
                if changed
                else list(self._subscribers.items())
            )
            try:
                with self._redis_call():
                    self._presence("", counts, replace=not changed)
            except BrokerUnavailable as error:
                self._presence_dirty |= dirty
                logger.warning("wsgi_push: could not refresh presence: %s", error)
                gevent.sleep(self.poll_interval)

    def close(self) -> None:
        """Stop this process's greenlets, withdraw its presence, release connections."""
        for greenlet in (self._listener, self._presence_keeper):
            if greenlet is not None:
                greenlet.kill()
        self._listener = self._presence_keeper = None
        self._listening = False
        try:
            with self._redis_call():
                self.client.zrem(self._processes_key, self.process_id)
                self.client.delete(self._counts_prefix + self.process_id)
        except BrokerUnavailable:
            pass  # the entry expires after presence_ttl anyway
        if self._owns_client:
            self.client.connection_pool.disconnect()


def _pool_from_url(redis: ModuleType, url: str, options: dict[str, Any]) -> Any:
    """A bounded connection pool: connections per process stay a handful."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    options.setdefault("max_connections", 8)
    options.setdefault("timeout", 5)  # wait for a free pooled connection
    options.setdefault("socket_timeout", 5)
    options.setdefault("socket_connect_timeout", 2)
    options.setdefault("health_check_interval", 30)
    # One immediate retry: after a Redis restart each pooled connection is
    # stale once. More would stall publishers during an outage.
    options.setdefault("retry", Retry(NoBackoff(), 1))
    return redis.BlockingConnectionPool.from_url(url, **options)


def _decode(channel: str, member: bytes | str) -> Message:
    message_id, published_ms, payload = _text(member).split(" ", 2)
    event, data = json.loads(payload)
    return Message(channel, int(message_id), event, data, int(published_ms) / 1000)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _socket_patched() -> bool:
    from gevent import monkey

    return bool(monkey.is_module_patched("socket"))
