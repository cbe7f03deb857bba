"""The embedded default broker: everything in this process's memory.

No setup, no other process. Subscribers and publishers must share the
process (one pywsgi server, or one gunicorn worker); use
:class:`~wsgi_push.RedisBroker` for more.
"""

from __future__ import annotations

import json
import time

from ..errors import TooManyChannels
from ..message import Message
from .base import Batch, Broker, make_batch, plan_read
from .history import History
from .signals import allocate_lock

# json.loads without its per-call checks: data_json is always our dumps' text.
_decode_json = json.JSONDecoder().decode


class MemoryBroker(Broker):
    """Per-channel ring buffers in memory with gevent wake-ups.

    Usage::

        broker = MemoryBroker(max_messages=1000, max_age=3600)
        broker.publish("news", {"title": "hi"}, event="headline")  # -> 1

    ``max_channels`` bounds how many channels are held: at the limit, idle
    channels (nothing retained, no subscriber, no waiter) are dropped, and
    if none is idle a new channel is refused with :class:`TooManyChannels`.
    A channel made again after a drop continues above every id a dropped
    channel had, so no id is reused; a client that still holds an old id is
    told with a gap notice, never silently skipped.
    """

    def __init__(
        self,
        max_messages: int = 1000,
        max_age: float | None = None,
        max_channels: int = 100_000,
    ) -> None:
        super().__init__(max_messages, max_age)
        self.max_channels = max_channels
        self._histories: dict[str, History] = {}
        # The highest id of any dropped channel: new channels start above it.
        self._dropped_last_id = 0
        # Threaded servers publish from several threads: one id per message.
        self._append_lock = allocate_lock()

    def _append(self, channel: str, event: str, data_json: str) -> int:
        # Store a JSON round trip: the caller may mutate its data afterwards,
        # and every broker hands subscribers the same JSON types.
        data = _decode_json(data_json)
        with self._append_lock:
            history = self._histories.get(channel)
            if history is None:
                history = self._new_history(channel)
            message = Message(channel, history.last_id + 1, event, data, time.time())
            history.append(message)
        self.signals.notify(channel)
        return message.id

    def read(self, channel: str, after: int, limit: int | None = None) -> Batch:
        history = self._histories.get(channel)
        if history is None:
            return make_batch([], plan_read(after, 0, 0)[1], after, 0)
        return history.read(after, limit)

    def read_nowait(self, channel: str, after: int) -> Batch | None:
        return self.read(channel, after)

    def last_id(self, channel: str) -> int:
        history = self._histories.get(channel)
        return 0 if history is None else history.last_id

    def behind(self, channel: str, position: int) -> bool:
        history = self._histories.get(channel)
        return history is not None and history.last_id > position

    @property
    def channel_count(self) -> int:
        return len(self._histories)

    def _new_history(self, channel: str) -> History:
        if len(self._histories) >= self.max_channels:
            self.drop_idle_channels()
            if len(self._histories) >= self.max_channels:
                raise TooManyChannels(f"over {self.max_channels} channels")
        history = self._histories[channel] = History(self.max_messages, self.max_age)
        history.last_id = self._dropped_last_id
        return history

    def drop_idle_channels(self) -> int:
        """Forget channels with nothing retained, no subscriber and no waiter."""
        idle = []
        for channel, history in self._histories.items():
            history.expire()
            if not (
                history.retained
                or self.subscriber_count(channel)
                or self.signals.has_waiters(channel)
            ):
                idle.append(channel)
        for channel in idle:
            dropped = self._histories.pop(channel)
            self._dropped_last_id = max(self._dropped_last_id, dropped.last_id)
        return len(idle)
