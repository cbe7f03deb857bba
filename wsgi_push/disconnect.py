"""Noticing that a client closed its connection while nothing is being written.

A stream notices a vanished client when a heartbeat fails to send; a parked
long poll writes nothing until it answers, so without help it would hold its
``max_connections`` slot for the whole ``poll_timeout``. The servers of this
package (``wsgi_push.serve`` and the gunicorn worker) put a hook in each
request's environ::

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
from typing import Any

from gevent import get_hub, monkey

ON_DISCONNECT = "wsgi_push.on_disconnect"
"""The environ key of the hook, absent under servers that don't provide it."""

OnDisconnect = Callable[[Callable[[], None]], Callable[[], None]]
_READ = 1  # libev/libuv's read-readiness flag
_PEEK = socket.MSG_PEEK | socket.MSG_DONTWAIT
_PLAIN_SOCKET: type[socket.socket] = monkey.get_original("socket", "socket")


class DisconnectWatch:
    """The hook for one connection's socket: call it with a callback, get a
    function that stops watching.

    One per connection, reused by each of its requests: its read watcher is
    made once, and the peek's socket object only when the socket turns
    readable (making one costs several system calls).
    """

    __slots__ = ("_fileno", "_watcher", "_callback")

    def __init__(self, sock: socket.socket) -> None:
        self._fileno = sock.fileno()
        self._watcher: Any = None
        self._callback: Callable[[], None] | None = None

    def __call__(self, callback: Callable[[], None]) -> Callable[[], None]:
        watcher = self._watcher
        if watcher is None:
            watcher = self._watcher = get_hub().loop.io(self._fileno, _READ)
        self._callback = callback
        watcher.start(self._readable)
        return self._cancel

    def _readable(self) -> None:
        # A plain (unpatched) socket object over the same descriptor, for a
        # peek that never waits; detached, never closed.
        peeker = _PLAIN_SOCKET(fileno=self._fileno)
        try:
            peeked = peeker.recv(1, _PEEK)
        except (BlockingIOError, InterruptedError):
            return  # not really readable yet
        except OSError:
            peeked = b""  # reset: gone as well
        finally:
            peeker.detach()
        callback = self._callback
        self._cancel()
        if not peeked and callback is not None:
            callback()

    def _cancel(self) -> None:
        self._watcher.stop()
        self._callback = None
