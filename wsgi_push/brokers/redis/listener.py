"""One pub/sub connection per process relaying publish notifications, and
noticing when Redis lost data.

Notifications are hints: after every (re)subscription the listener re-reads
the last id of every channel this process knows, so a notification lost
while it was disconnected costs latency, never data. Losses are noticed by
the Redis server's run id (a restart, perhaps from an older snapshot, or a
failover) and by a dataset marker key that ``FLUSHALL`` or an empty restart
removes; then every cached channel is forgotten and its waiters woken, so
they read from Redis again and get their gap notices.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

from .background import Background, redis_errors
from .cache import ChannelCache

logger = logging.getLogger("wsgi_push")

# Reconnecting: at once, then with back-off to every 2 s.
RECONNECT_DELAYS = (0.05, 2.0)


class Listener:
    """Relays ``"<id> <channel>"`` notifications into ``cache`` and wakes
    local waiters with ``notify(channel)``.

    ``epoch`` counts (re)subscriptions; the cache trusts what it read within
    the current one, and nothing while ``listening`` is False. The dataset
    is checked for a loss every ``check_interval`` seconds.
    """

    def __init__(
        self,
        client: Any,
        key_prefix: str,
        cache: ChannelCache,
        last_key: Callable[[str], str],
        notify: Callable[[str], None],
        check_interval: float,
    ) -> None:
        self.client = client
        self.notify_channel = f"{key_prefix}:notify"
        self.marker_key = f"{key_prefix}:dataset"
        self.cache = cache
        self.last_key = last_key
        self.notify = notify
        self.check_interval = check_interval
        self.listening = False
        self.epoch = 0
        # The dataset last seen: the Redis server's run id, and the marker.
        self._run_id: str | None = None
        self._marker: bytes | str | None = None
        self._background = Background("Redis listener", self._session, RECONNECT_DELAYS)

    def trusted_epoch(self) -> int:
        """The session the cache may be trusted in, -1 while disconnected."""
        return self.epoch if self.listening else -1

    def start(self) -> None:
        """Listen (again, should it ever have stopped)."""
        self._background.start()

    def stop(self) -> None:
        self._background.stop()
        self.listening = False

    def _session(self) -> None:
        """Subscribe, catch up, relay notifications and check the dataset
        until an error (the caller logs it once per outage and reconnects
        with back-off) or :meth:`stop`."""
        pubsub = self.client.pubsub()
        try:
            pubsub.subscribe(self.notify_channel)
            next_check = 0.0
            while not self._background.stopping:
                notification = pubsub.get_message(timeout=self.check_interval)
                if notification is None:
                    pass
                elif notification["type"] == "subscribe":
                    self._catch_up()
                    next_check = time.monotonic() + self.check_interval
                    self._background.healthy()
                elif notification["type"] == "message":
                    self._notified(as_text(notification["data"]))
                if self.listening and time.monotonic() >= next_check:
                    self._check_dataset()
                    next_check = time.monotonic() + self.check_interval
        finally:
            self.listening = False
            with contextlib.suppress(Exception):  # closing a broken connection may fail too
                pubsub.close()

    def _notified(self, notification: str) -> None:
        message_id, _, channel = notification.partition(" ")
        record = self.cache.get(channel)
        if record is not None:
            record.known_last = max(record.known_last, int(message_id))
        self.notify(channel)

    def _catch_up(self) -> None:
        """Just (re)subscribed: anything published while not listening went
        unannounced, so check the dataset for a loss and re-read every known
        channel's last id (one pipelined round trip), then trust the caches
        again and wake whoever may be behind."""
        self.epoch += 1
        self._check_dataset(self.client.info("server")["run_id"])
        # What each record knew before the round trip: a read during it may know more.
        records = [(channel, record, record.known_last) for channel, record in self.cache.items()]
        pipeline = self.client.pipeline(transaction=False)
        for channel, _, _ in records:
            pipeline.get(self.last_key(channel))
        lasts = pipeline.execute() if records else []
        for (channel, record, known), last in zip(records, lasts, strict=True):
            last = int(last or 0)
            if last < known:
                self.cache.drop(channel)  # ids went down: its waiters read to learn what is left
                self.notify(channel)
            elif last > known:
                record.known_last = max(record.known_last, last)
                self.notify(channel)
            record.epoch = self.epoch
        self.listening = True

    def _check_dataset(self, run_id: str | None = None) -> None:
        """Forget every cached channel if the dataset is not the one seen
        before: another Redis run (``run_id``, known on subscribing) or
        another marker. A missing marker is set anew (when Redis takes a
        write: a full Redis still answers reads, and waiters their reads)."""
        marker = self.client.get(self.marker_key)
        if marker is None:
            with contextlib.suppress(*redis_errors()):
                self.client.set(self.marker_key, secrets.token_hex(8), nx=True)
                marker = self.client.get(self.marker_key)
        run_id = run_id or self._run_id
        lost = (self._run_id is not None and run_id != self._run_id) or (
            self._marker is not None and marker != self._marker
        )
        self._run_id, self._marker = run_id, marker
        if lost:
            self.epoch += 1
            logger.warning(
                "wsgi_push: Redis lost data (restarted or flushed); subscribers get gap notices"
            )
            for channel in self.cache.forget_all():
                self.notify(channel)


def as_text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value
