"""A gunicorn gevent worker that ends push connections on a graceful shutdown.

``gunicorn -k wsgi_push.gunicorn.GeventWorker app:app``

gunicorn's own gevent worker waits up to ``--graceful-timeout`` for requests
to finish, but a push stream never finishes by itself: clients would hang on
a dying worker and then be cut. This worker drains every
:class:`~wsgi_push.PushMiddleware` as soon as it has stopped accepting, and
drops connections whose socket takes no data for 30 seconds (longer with a
longer ``--keep-alive``: one socket timeout covers sending and waiting for
the next request, and gunicorn's keep-alive timer must end an idle
connection first, quietly).
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

from gunicorn.workers.ggevent import GeventWorker as _GeventWorker

from .disconnect import ON_DISCONNECT, DisconnectWatch
from .lifecycle import drain_all
from .server import DEFAULT_SEND_TIMEOUT, PushServer
from .stats import PROCESS_COUNTERS

if TYPE_CHECKING:
    from collections.abc import Iterable

    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


class GeventWorker(_GeventWorker):  # type: ignore[misc]
    _drained = False
    wsgi: WSGIApplication  # set by gunicorn's load_wsgi()

    def load_wsgi(self) -> None:
        super().load_wsgi()
        app, timeout = self.wsgi, self.socket_timeout

        def push_app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
            sock = environ["gunicorn.socket"]
            # gunicorn's handle() makes the socket blocking (no timeout) after
            # our handle() tuned it: set the timeout once a request is in.
            sock.settimeout(timeout)
            # A parked long poll ends as soon as its client closes.
            environ[ON_DISCONNECT] = DisconnectWatch(sock)
            return app(environ, start_response)

        self.wsgi = push_app

    def handle(self, listener: Any, client: socket.socket, addr: Any) -> None:
        PushServer.tune_socket(client, self.socket_timeout, PushServer.send_buffer)
        super().handle(listener, client, addr)

    @property
    def socket_timeout(self) -> float:
        """The send timeout, but past ``--keep-alive`` (a socket timeout while
        gunicorn waits for the next request logs a traceback)."""
        return max(DEFAULT_SEND_TIMEOUT, float(self.cfg.keepalive) + 1.0)

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> bool:
        try:
            result: bool = super().handle_request(listener_name, req, sock, addr)
        except TimeoutError:
            # The client took no data for ``send_timeout`` seconds: close the
            # connection without a traceback in the log; it resumes by id.
            PROCESS_COUNTERS.slow_clients_dropped += 1
            raise StopIteration from None  # gunicorn's "close this connection"
        return result

    def notify(self) -> None:
        super().notify()
        # gunicorn calls notify() from its graceful-shutdown loop, after it
        # closed the listeners: the moment to end the open streams.
        if not self.alive and not self._drained:
            self._drained = True
            drain_all()
