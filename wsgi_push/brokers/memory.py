"""The embedded default broker: everything in this process's memory.

No setup, no other process. Subscribers and publishers must share the
process (one pywsgi server, or one gunicorn worker); use
:class:`~wsgi_push.RedisBroker` for more.
"""

from __future__ import annotations

import json
import time
from typing import Any

from ..message import Message, check_channel, check_data, check_event
from .base import Batch, Broker, make_batch, plan_read
from .history import History


class MemoryBroker(Broker):
    """Per-channel ring buffers in memory with gevent wake-ups.

    Usage::

        broker = MemoryBroker(max_messages=1000, max_age=3600)
        broker.publish("news", {"title": "hi"}, event="headline")  # -> 1
    """

    def __init__(self, max_messages: int = 1000, max_age: float | None = None) -> None:
        super().__init__(max_messages, max_age)
        self._histories: dict[str, History] = {}

    def publish(self, channel: str, data: Any, event: str | None = None) -> int:
        check_channel(channel)
        event = check_event(event)
        # Store a JSON round trip: the caller may mutate ``data`` afterwards,
        # and every broker hands subscribers the same JSON types.
        data = json.loads(check_data(data))
        history = self._histories.get(channel)
        if history is None:
            history = self._histories[channel] = History(self.max_messages, self.max_age)
        message = Message(channel, history.last_id + 1, event, data, time.time())
        history.append(message)
        self.signals.notify(channel)
        return message.id

    def read(self, channel: str, after: int, limit: int | None = None) -> Batch:
        history = self._histories.get(channel)
        if history is None:
            return make_batch([], plan_read(after, 0, 0)[1], after, 0)
        return history.read(after, limit)

    def last_id(self, channel: str) -> int:
        history = self._histories.get(channel)
        return 0 if history is None else history.last_id
