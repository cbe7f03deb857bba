"""Heartbeats and news written for a parked stream, without waking its greenlet.

An idle stream's heartbeat used to resume its greenlet: switch in, leave
and rejoin the waiting sets, go down pywsgi's write path, park again. For
10,000 idle connections that was most of the server's idle CPU. The
servers of this package (``wsgi_push.serve``, ``python -m wsgi_push``) put
a hook in each request's environ::

    write_nowait = environ["wsgi_push.write_nowait"]
    write_nowait(b":\\n\\n")  # -> WROTE_ALL: the socket took it all

It writes bytes as more of the response body (framed as the response is:
a chunk under HTTP/1.1) without ever blocking, from any greenlet of the
server's thread, and must only be called while the request's own greenlet
is not writing (parked between two chunks of its body). It answers
``WROTE_ALL``; ``WROTE_NOTHING``, and the caller lets the request's
greenlet write (blocking, under the send timeout) instead; or
``WROTE_PART``: the rest goes out before the response's next bytes, so the
stream stays well-formed, and the caller lets the greenlet write next.

A publish writes the news for a parked single-channel stream the same way,
from the hub (``Spot.on_notify``, :func:`wsgi_push.transports.base.follow`):
a fan-out to 100 subscribers then costs no greenlet switch per subscriber.
"""

from __future__ import annotations

from collections.abc import Callable

WRITE_NOWAIT = "wsgi_push.write_nowait"
"""The environ key of the hook, absent under servers that don't provide it."""

WROTE_NOTHING = 0
WROTE_PART = 1
WROTE_ALL = 2

WriteNowait = Callable[[bytes], int]
