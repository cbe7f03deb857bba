"""Ending every push connection of this process, for a graceful shutdown.

Servers call :func:`drain_all` once they have stopped accepting new
connections: every :class:`~wsgi_push.PushMiddleware` in the process ends its
open streams and long polls at once (clients reconnect to a live process and
resume by id), and answers requests still arriving on kept-alive
connections with an immediately finished response and ``Connection: close``.
"""

from __future__ import annotations

from typing import Protocol
from weakref import WeakSet


class Drainable(Protocol):
    """What a server can drain: a :class:`~wsgi_push.PushMiddleware` (a
    protocol, so that this module needn't import the middleware)."""

    def drain(self) -> None: ...


_middlewares: WeakSet[Drainable] = WeakSet()


def register(middleware: Drainable) -> None:
    _middlewares.add(middleware)


def drain_all() -> None:
    """Drain every live PushMiddleware of this process."""
    for middleware in list(_middlewares):
        middleware.drain()
