"""RedisBroker: the numbered queues in Redis, tied to this process's cache,
listener and presence."""

from __future__ import annotations

import json
import os
import secrets
import socket
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from ...errors import BrokerUnavailable
from ...message import Message, dumps
from ..base import Batch, Broker
from ..signals import Signals, Spot, WaitResult
from .cache import ChannelCache
from .listener import Listener, as_text
from .presence import Presence
from .scripts import Scripts


def import_redis() -> ModuleType:
    """The ``redis`` package, or an ImportError that says how to install it."""
    try:
        import redis
    except ImportError:
        raise ImportError(
            "RedisBroker needs the redis package: pip install 'wsgi_push[redis]'"
        ) from None
    return redis


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

    Its background jobs (the listener, the presence keeper) are greenlets
    under gevent's monkey patching (``gunicorn -k gevent``, ``python -m
    wsgi_push``) and daemon threads without it (a threaded development
    server such as ``flask run``); publishing works anywhere.
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
        # Any Redis error (unreachable, OOM, MISCONF, NOPERM, READONLY after
        # a failover, LOADING ...) means: Redis can't serve us right now.
        self._outages: tuple[type[Exception], ...] = (redis.RedisError,)
        self._scripts = Scripts(self.client)
        self._max_age_ms = 0 if max_age is None else max(1, round(max_age * 1000))
        self._start_process()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisBroker:
        """A broker on the Redis at ``url`` (``redis://``, ``rediss://``, ``unix://``).

        ``options`` are :class:`RedisBroker` parameters and redis-py
        connection options (``socket_timeout``, ``max_connections`` ...).
        """
        return cls(url, **options)

    def _start_process(self) -> None:
        """Make what belongs to one process (again after a fork)."""
        self._pid = os.getpid()
        self.process_id = f"{socket.gethostname()}:{self._pid}:{secrets.token_hex(4)}"
        self._cache = ChannelCache(
            self.cache_messages,
            self.max_age,
            self.max_cached_channels,
            self._fetch,
            lambda: self._listener.trusted_epoch(),
        )
        self._listener = Listener(
            self.client,
            self.key_prefix,
            self._cache,
            lambda channel: self._keys(channel)[0],
            lambda channel: self.signals.notify(channel),
            self.poll_interval,
        )
        self._presence = Presence(
            self.client,
            self._scripts.presence,
            self.key_prefix,
            self.process_id,
            self.presence_ttl,
            self.poll_interval,
            self._subscribers,
            self._redis_call,
        )

    def _same_process(self) -> None:
        if self._pid != os.getpid():
            self._subscribers.clear()
            self.signals = Signals()
            self._start_process()

    def _keys(self, channel: str) -> list[str]:
        """The channel's ``last``, ``log`` and ``run`` keys (one cluster slot)."""
        prefix = f"{self.key_prefix}:{{{channel}}}"
        return [f"{prefix}:last", f"{prefix}:log", f"{prefix}:run"]

    @contextmanager
    def _redis_call(self) -> Iterator[None]:
        """Turn any Redis error into :class:`BrokerUnavailable` (503 + Retry-After)."""
        try:
            yield
        except self._outages as error:
            raise BrokerUnavailable(
                f"Redis is unavailable ({type(error).__name__}: {error})"
            ) from error

    # The numbered queue -------------------------------------------------------

    def _append(self, channel: str, event: str, data_json: str) -> int:
        return self._append_many([(channel, event, data_json)])[0]

    def _append_many(self, entries: Sequence[tuple[str, str, str]]) -> list[int]:
        """One Lua script for the whole batch: ids, store, trim, notify.

        Raises :class:`BrokerUnavailable` when Redis can't take it; then the
        messages may or may not have been stored (as with any remote call),
        all or none of them.
        """
        keys: list[str] = []
        args: list[Any] = [self.max_messages, self._max_age_ms, self._listener.notify_channel]
        for channel, event, data_json in entries:
            keys.extend(self._keys(channel))
            args.append(channel)
            args.append(f"[{dumps(event)},{data_json}]")  # what dumps([event, data]) gives
        with self._redis_call():
            ids = self._scripts.publish(keys=keys, args=args)
        return [int(message_id) for message_id in ids]

    def last_id(self, channel: str) -> int:
        """The channel's newest id, read through the read script so that a
        Redis that lost data answers with its new era's floor."""
        return self._fetch(channel, _MAX_ID, 0)[0]

    def read(self, channel: str, after: int, limit: int | None = None) -> Batch:
        self._same_process()
        return self._cache.read(channel, after, limit)

    def _fetch(self, channel: str, after: int, limit: int | None) -> tuple[int, int, list[Message]]:
        """``(last id, oldest retained id, messages after `after`)`` in one round trip."""
        args = [after, -1 if limit is None else limit, self._max_age_ms]
        with self._redis_call():
            last, first, *members = self._scripts.read(keys=self._keys(channel), args=args)
        return int(last), int(first), [_decode(channel, member) for member in members]

    # Waiting: one listener per process -----------------------------------------

    def wait(
        self, positions: Mapping[str, int], timeout: float | None, spot: Spot | None = None
    ) -> WaitResult:
        self._same_process()
        for channel in positions:
            self._cache.record(channel)  # known from now on: notifications update it
        self._listener.start()
        if self._listener.listening:
            return super().wait(positions, timeout, spot)
        # No notifications right now: look at Redis again soon.
        poll = self.poll_interval if timeout is None else min(timeout, self.poll_interval)
        return self.pause(positions, poll, spot)

    def behind(self, channel: str, position: int) -> bool:
        # By name: the record may be dropped (past max_cached_channels, or
        # after a loss) while we wait, and a dropped one hears of nothing:
        # read to know. Without the listener nothing is heard of either.
        record = self._cache.get(channel)
        return record is None or record.known_last > position or not self._listener.listening

    # Presence across processes ------------------------------------------------

    def add_subscriber(self, channel: str) -> None:
        self._same_process()
        super().add_subscriber(channel)
        self._presence.changed(channel)

    def remove_subscriber(self, channel: str) -> None:
        self._same_process()
        super().remove_subscriber(channel)
        self._presence.changed(channel)

    def subscriber_count(self, channel: str) -> int:
        """Subscribers of ``channel`` in every live process.

        Also records this process's own count for it first. While Redis is
        unreachable, answers this process's count.
        """
        self._same_process()
        return self._presence.count(channel)

    def close(self) -> None:
        """Stop this process's greenlets, withdraw its presence, release connections."""
        self._listener.stop()
        self._presence.withdraw()
        if self._owns_client:
            self.client.connection_pool.disconnect()


_MAX_ID = 2**53 - 1  # the largest id a client can hold (JavaScript's safe integers)


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
    message_id, published_ms, payload = as_text(member).split(" ", 2)
    event, data = json.loads(payload)
    return Message(channel, int(message_id), event, data, int(published_ms) / 1000)
