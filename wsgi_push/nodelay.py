"""Nagle's algorithm off on a push request's connection, from inside the middleware.

gevent's plain ``pywsgi.WSGIServer`` leaves Nagle on and writes a response's
head and body in two sends: the body then waits for the client's delayed ACK
(~40 ms on Linux), which made every long-poll answer and publish take ~49 ms.
pywsgi hands the app no socket, but ``environ["wsgi.input"].rfile`` is the
connection's buffered reader, whose ``fileno()`` is the socket's descriptor;
a duplicate of it shares the socket, so ``TCP_NODELAY`` set there holds for
the connection. That is done once per connection (the reader lives as long
as it does).

Servers that set the option themselves are left alone: ``wsgi_push.serve`` /
``python -m wsgi_push`` and the gunicorn push worker mark their environ with
:data:`SOCKET_TUNED`, and gunicorn turns Nagle off on its listener (accepted
sockets inherit it).
"""

from __future__ import annotations

import logging
import socket
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

logger = logging.getLogger("wsgi_push")

#: An environ key a server sets when its sockets already have Nagle off.
SOCKET_TUNED = "wsgi_push.socket_tuned"


class NagleOff:
    """Turn Nagle off on each connection pywsgi hands a push request over.

    Call it with every push request's environ; it costs a dict lookup and a
    weak-set test after a connection's first request.
    """

    def __init__(self) -> None:
        self._done: weakref.WeakSet[Any] = weakref.WeakSet()
        self._noted = False

    def __call__(self, environ: WSGIEnvironment) -> None:
        if SOCKET_TUNED in environ or "gunicorn.socket" in environ:
            return
        stream = environ.get("wsgi.input")
        # pywsgi's Input keeps the connection's reader as ``rfile``; on an
        # upgrade request wsgi.input is that reader itself.
        reader = getattr(stream, "rfile", stream)
        if reader is None or reader in self._done:
            return
        try:
            self._done.add(reader)
        except TypeError:  # not weak-referenceable: not pywsgi's reader
            return
        if (
            set_nodelay(reader)
            and not self._noted
            and environ.get("SERVER_SOFTWARE", "").startswith("gevent")
        ):
            self._noted = True
            logger.warning(
                "wsgi_push: served by gevent's plain pywsgi.WSGIServer; the middleware turns "
                "Nagle off on each push connection itself, but cannot give it a listen backlog "
                "for reconnect storms (pywsgi's is 128), a send timeout for clients that stop "
                "reading, 1 KiB instead of 8 KiB read buffers per idle connection, or a drain "
                "on SIGTERM: serve with wsgi_push.serve or python -m wsgi_push for those"
            )


def set_nodelay(reader: Any) -> bool:
    """``TCP_NODELAY`` on the socket under ``reader``; False if it has none
    (not a socket, or not TCP: a Unix socket has no Nagle)."""
    try:
        fd = reader.fileno()
        with socket.fromfd(fd, socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (AttributeError, OSError, ValueError):
        return False
    return True
