"""A gunicorn gevent worker that ends push connections on a graceful shutdown.

``gunicorn -k wsgi_push.gunicorn.GeventWorker app:app``

gunicorn's own gevent worker waits up to ``--graceful-timeout`` for requests
to finish, but a push stream never finishes by itself: clients would hang on
a dying worker and then be cut. This worker drains every
:class:`~wsgi_push.PushMiddleware` as soon as it has stopped accepting, and
drops connections whose socket takes no data for ``send_timeout`` seconds.
"""

from __future__ import annotations

import socket
from typing import Any

from gunicorn.workers.ggevent import GeventWorker as _GeventWorker

from .lifecycle import drain_all
from .server import PushServer


class GeventWorker(_GeventWorker):  # type: ignore[misc]
    _drained = False

    def handle(self, listener: Any, client: socket.socket, addr: Any) -> None:
        PushServer.tune_socket(client)
        super().handle(listener, client, addr)

    def notify(self) -> None:
        super().notify()
        # gunicorn calls notify() from its graceful-shutdown loop, after it
        # closed the listeners: the moment to end the open streams.
        if not self.alive and not self._drained:
            self._drained = True
            drain_all()
