"""One pub/sub connection per process relaying publish notifications.

Notifications are hints: after every (re)subscription the listener re-reads
the last id of every channel this process knows, so a notification lost
while it was disconnected costs latency, never data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import gevent

from .cache import ChannelCache

logger = logging.getLogger("wsgi_push")

LISTEN_TIMEOUT = 5.0
RECONNECT_DELAYS = (0.05, 2.0)


class Listener:
    """Relays ``"<id> <channel>"`` notifications into ``cache`` and wakes
    local waiters with ``notify(channel)``.

    ``epoch`` counts (re)subscriptions; the cache trusts what it read within
    the current one, and nothing while ``listening`` is False.
    """

    def __init__(
        self,
        client: Any,
        notify_channel: str,
        cache: ChannelCache,
        last_key: Callable[[str], str],
        notify: Callable[[str], None],
        outages: tuple[type[BaseException], ...],
    ) -> None:
        self.client = client
        self.notify_channel = notify_channel
        self.cache = cache
        self.last_key = last_key
        self.notify = notify
        self.outages = outages
        self.listening = False
        self.epoch = 0
        self._greenlet: gevent.Greenlet | None = None

    def trusted_epoch(self) -> int:
        """The session the cache may be trusted in, -1 while disconnected."""
        return self.epoch if self.listening else -1

    def start(self) -> None:
        if self._greenlet is None:
            if not _socket_patched():
                raise RuntimeError(
                    "RedisBroker subscribers need gevent's monkey patching: run under "
                    "gunicorn -k gevent or python -m wsgi_push, or call "
                    "gevent.monkey.patch_all() first"
                )
            self._greenlet = gevent.spawn(self._listen)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill()
        self._greenlet = None
        self.listening = False

    def _listen(self) -> None:
        """Relay notifications to local waiters forever, reconnecting with back-off."""
        delay = RECONNECT_DELAYS[0]
        while True:
            pubsub = self.client.pubsub()
            try:
                pubsub.subscribe(self.notify_channel)
                while True:
                    notification = pubsub.get_message(timeout=LISTEN_TIMEOUT)
                    if notification is None:
                        continue
                    if notification["type"] == "subscribe":
                        self._catch_up()
                        delay = RECONNECT_DELAYS[0]
                    elif notification["type"] == "message":
                        self._notified(as_text(notification["data"]))
            except self.outages as error:
                logger.warning("wsgi_push: Redis listener disconnected (%s); reconnecting", error)
            except Exception:
                # The listener must outlive surprises, or waiters fall back to polling.
                logger.exception("wsgi_push: Redis listener failed; reconnecting")
            finally:
                self.listening = False
                pubsub.close()
            gevent.sleep(delay)
            delay = min(delay * 2, RECONNECT_DELAYS[1])

    def _notified(self, notification: str) -> None:
        message_id, _, channel = notification.partition(" ")
        record = self.cache.get(channel)
        if record is not None:
            record.known_last = max(record.known_last, int(message_id))
        self.notify(channel)

    def _catch_up(self) -> None:
        """Just (re)subscribed: anything published while not listening went
        unannounced, so re-read every known channel's last id (one pipelined
        round trip), then trust the caches again and wake whoever is behind."""
        self.epoch += 1
        records = list(self.cache.items())
        pipeline = self.client.pipeline(transaction=False)
        for channel, _ in records:
            pipeline.get(self.last_key(channel))
        lasts = pipeline.execute() if records else []
        for (channel, record), last in zip(records, lasts, strict=True):
            if int(last or 0) > record.known_last:
                record.known_last = int(last)
                self.notify(channel)
            record.epoch = self.epoch
        self.listening = True


def as_text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _socket_patched() -> bool:
    from gevent import monkey

    return bool(monkey.is_module_patched("socket"))
