"""Noticing that a client closed its connection while nothing is being written.

Left alone, a stream notices a vanished client when a write (a message or
a heartbeat) fails, and a parked long poll, which writes nothing until it
answers, would hold its ``max_connections`` slot for the whole
``poll_timeout``. The servers of this package (``wsgi_push.serve`` and the
gunicorn worker) put a hook in each request's environ, which both use::

    cancel = environ["wsgi_push.on_disconnect"](callback)
    try:
        ...  # park; callback() runs (in the hub) if the client closes meanwhile
    finally:
        cancel()

While registered, the client socket is watched for read-readiness; a
``MSG_PEEK`` read then tells an end of stream or a reset (the client is
gone: ``callback()``) from bytes it sent (a pipelined request: watching
stops, nothing is called). A client that only half-closes its sending side
counts as gone, as for Go's and nginx's servers.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from gevent import get_hub, monkey

ON_DISCONNECT = "wsgi_push.on_disconnect"
"""The environ key of the hook, absent under servers that don't provide it."""

OnDisconnect = Callable[[Callable[[], None]], Callable[[], None]]
_READ = 1  # libev/libuv's read-readiness flag
_PEEK = socket.MSG_PEEK | socket.MSG_DONTWAIT
_PLAIN_SOCKET: type[socket.socket] = monkey.get_original("socket", "socket")


class DisconnectWatch:
    """The hook for one connection's socket: call it with a callback, get a
    function that stops watching."""

    __slots__ = ("_fileno",)

    def __init__(self, sock: socket.socket) -> None:
        self._fileno = sock.fileno()

    def __call__(self, callback: Callable[[], None]) -> Callable[[], None]:
        fileno = self._fileno
        watcher = get_hub().loop.io(fileno, _READ)

        def readable() -> None:
            # A plain (unpatched) socket object over the same descriptor, for
            # a peek that never waits; detached, never closed. Made only now:
            # a parked stream or poll keeps nothing but the watcher.
            peeker = _PLAIN_SOCKET(fileno=fileno)
            try:
                peeked = peeker.recv(1, _PEEK)
            except (BlockingIOError, InterruptedError):
                return  # not really readable yet
            except OSError:
                peeked = b""  # reset: gone as well
            finally:
                peeker.detach()
            watcher.stop()
            if not peeked:
                callback()

        def cancel() -> None:
            watcher.stop()
            watcher.close()

        watcher.start(readable)
        return cancel
