"""Scenario 3's chat rules: name and message limits, presence, and the rooms.

Presence comes from the middleware's ``on_subscribe``/``on_unsubscribe``
hooks: the page opens ``/push/sse/chat?name=NAME``, so the hook reads the
name from that request's query string and announces it on the channel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from .publishers import Publish

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

CHANNEL = "chat"
# The rooms of the multi-room chat, each its own channel ``room.<name>``.
ROOMS = ("lobby", "gevent", "random")
NAME_LIMIT = 20
TEXT_LIMIT = 1000


def room_channel(room: str) -> str:
    return f"room.{room}"


def clean_name(name: str) -> str:
    return name.strip()[:NAME_LIMIT] or "anonymous"


def clean_text(text: str) -> str:
    return text.strip()[:TEXT_LIMIT]


class Presence:
    """Publishes a ``presence`` event when a chat subscriber joins or leaves:
    ``{"name", "status": "online" | "offline", "online": N}``, where N counts
    the chat's open connections in this process."""

    def __init__(self, publish: Publish) -> None:
        self._publish = publish

    def joined(self, environ: WSGIEnvironment, channel: str, count: int) -> None:
        self._announce(environ, channel, "online", count)

    def left(self, environ: WSGIEnvironment, channel: str, count: int) -> None:
        self._announce(environ, channel, "offline", count)

    def _announce(self, environ: WSGIEnvironment, channel: str, status: str, count: int) -> None:
        if channel != CHANNEL:
            return
        names = parse_qs(environ.get("QUERY_STRING", "")).get("name", [""])
        data = {"name": clean_name(names[0]), "status": status, "online": count}
        self._publish(CHANNEL, data, "presence")
