"""Running an app under gevent's pywsgi the way a push server needs.

Plain ``pywsgi.WSGIServer`` leaves Nagle's algorithm on, so small
back-to-back writes (a publish answer, a long-poll answer, one SSE event)
can stall ~40 ms each; and its default listen backlog is small for
thousands of clients reconnecting at once. :func:`make_server` fixes both::

    from gevent import monkey; monkey.patch_all()   # first, before other imports
    from wsgi_push import serve
    serve(app, "127.0.0.1", 8000)

``python -m wsgi_push module:app`` does the same from the command line.
"""

from __future__ import annotations

import contextlib
import gc
import io
import signal
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gevent
import gevent.socket
from gevent import pywsgi
from gevent._hub_primitives import wait_on_socket
from gevent.exceptions import InvalidSwitchError

from .disconnect import ON_DISCONNECT, DisconnectWatch
from .httpfast import FastRequestMixin, FastResponseMixin
from .lifecycle import drain_all
from .nodelay import SOCKET_TUNED
from .nowait import WRITE_NOWAIT, WROTE_ALL, WROTE_NOTHING, WROTE_PART
from .repoll import REPOLL
from .stats import PROCESS_COUNTERS

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

DEFAULT_BACKLOG = 4096
DEFAULT_SEND_TIMEOUT = 30.0
DEFAULT_STOP_TIMEOUT = 5.0
# Linux grows a socket's send buffer up to 4 MiB: a stuck reader could park
# that much kernel memory and hide from the send timeout for a long while.
DEFAULT_SEND_BUFFER = 128 * 1024
# Young-generation collections between two full ones (Python's default: 10).
FULL_COLLECTION_SPACING = 100


def space_full_collections() -> None:
    """Make the garbage collector's full collections ten times rarer.

    A full collection walks every object alive, and a push server keeps ~50
    per open connection: with 10,000 subscribers each one stops the process
    for a few hundred milliseconds (no accepts: the listen queue overflows
    and clients back off for seconds). Connections churning (a reconnect
    storm) trigger one per ~2,500 reconnects. Connections make no reference
    cycles (their objects are freed as they close), so spacing full
    collections out costs nothing but a later reclaim of an app's own
    long-lived cycles; young cycles are collected as often as before.
    """
    young, middle, full = gc.get_threshold()
    gc.set_threshold(young, middle, max(full, FULL_COLLECTION_SPACING))


class PushSocket(gevent.socket.socket):  # type: ignore[misc]
    """gevent's socket, cheaper per request and per write.

    A push write (a chunk, a long-poll answer) is small and one ``send()``
    nearly always takes it whole; gevent's ``sendall()`` first asks the
    kernel for ``SO_SNDBUF`` on every call. The rest, if any, still goes
    through ``sendall()``. Overriding the public socket method keeps pywsgi's
    own write path (and its bookkeeping) untouched.

    A connection whose next request is a long poll's re-poll waits for it
    in turn (:mod:`wsgi_push.repoll`).

    Under a timeout, gevent makes a new ``Timeout`` for every wait for
    readiness, and a kept-alive connection waits for each of its requests:
    one libev timer per socket, restarted for each wait, does the same for a
    fifth of the instructions (~25,000 fewer per request).
    """

    __slots__ = ("_timer", "_turn", "repoll", "failed")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timer: Any = None
        self._turn: Any = None
        self.repoll = False
        # The error a write from the hub met (the client reset the
        # connection): the stream's own writes meet it without a system call.
        self.failed: OSError | None = None

    def sendall(self, data: bytes, flags: int = 0) -> None:
        failed = self.failed
        if failed is not None:
            raise type(failed)(failed.errno, failed.strerror)
        sent: int = self.send(data, flags)
        if sent < len(data):
            super().sendall(memoryview(data)[sent:], flags)

    def _wait(self, watcher: Any, timeout_exc: BaseException | None = None) -> None:
        timeout = self.timeout
        if watcher is None or watcher.callback is not None:
            wait_on_socket(self, watcher, timeout_exc)  # gevent's: its error cases
            return
        in_turn = watcher is self._read_event and self.repoll
        if timeout is None and not in_turn:
            wait_on_socket(self, watcher, timeout_exc)
            return
        timer = None
        if timeout is not None:
            timer = self._timer
            if timer is None or timer.at != timeout:
                timer = self._timer = self.hub.loop.timer(timeout)
            timer.start(_time_out, gevent.getcurrent(), timeout_exc)
        try:
            if in_turn:
                self._wait_in_turn(watcher)
            else:
                self.hub.wait(watcher)
        finally:
            if timer is not None:
                timer.stop()

    def _wait_in_turn(self, watcher: Any) -> None:
        """Wait until readable, then for a turn in the hub's callback queue
        (see :mod:`wsgi_push.repoll`)."""
        watcher.start(self._take_turn, watcher, gevent.getcurrent())
        try:
            if self.hub.switch() is not watcher:
                raise InvalidSwitchError("a socket wait was resumed by something else")
        finally:
            watcher.stop()
            turn = self._turn
            if turn is not None:  # still queued if the wait ended otherwise
                self._turn = None
                turn.stop()

    def _take_turn(self, watcher: Any, waiting: gevent.Greenlet) -> None:
        watcher.stop()
        self._turn = self.hub.loop.run_callback(waiting.switch, watcher)

    def close(self) -> None:
        timer = self._timer
        if timer is not None:
            timer.close()
            self._timer = None
        super().close()


_last_framed: tuple[bytes, bytes] = (b"", b"")


def frame_chunk(data: bytes) -> bytes:
    """``data`` as one HTTP/1.1 chunk. The streams one publish wakes write
    the same bytes object: the last one framed is kept."""
    global _last_framed
    last = _last_framed  # one read: another thread may replace it
    if last[0] is data:
        return last[1]
    framed = b"%x\r\n%s\r\n" % (len(data), data)
    _last_framed = (data, framed)
    return framed


def _time_out(waiting: gevent.Greenlet, timeout_exc: BaseException | None) -> None:
    """A socket wait timed out: raise it in the greenlet waiting, as gevent does."""
    waiting.throw(timeout_exc if timeout_exc is not None else TimeoutError("timed out"))


class PushHandler(FastRequestMixin, FastResponseMixin, pywsgi.WSGIHandler):  # type: ignore[misc]
    """pywsgi's handler, lean for many idle connections and quiet about
    clients dropped by the send timeout.

    A socket timeout once the response has started means the client took no
    data for ``send_timeout`` seconds: close the connection without logging a
    traceback (it resumes by id when it comes back).
    """

    # The request reader's buffer lives as long as the connection; pywsgi's
    # default (8 KiB) is most of what an idle subscriber costs. Longer
    # request lines and headers still parse, in more reads.
    read_buffer = 1024
    code: int  # set by pywsgi per response
    rfile: io.IOBase | None

    def __init__(self, sock: socket.socket, address: Any, server: Any) -> None:
        # pywsgi's, but its reader only where pywsgi reads (llhttp's path has
        # none until it hands a connection over), with a smaller buffer.
        self.socket = sock
        self.client_address = address
        self.server = server
        self.rfile = None if self.fast else sock.makefile("rb", self.read_buffer)
        # A parked long poll watches the socket through this and ends as
        # soon as its client closes, freeing its connection slot.
        self.disconnect_watch = DisconnectWatch(sock)

    def get_environ(self) -> dict[str, Any]:
        environ: dict[str, Any] = super().get_environ()
        environ[ON_DISCONNECT] = self.disconnect_watch
        if self.socket.__class__ is PushSocket:  # not TLS: both use the socket itself
            # A parked stream's heartbeats and news are written without waking it.
            environ[WRITE_NOWAIT] = self.write_nowait
            environ[REPOLL] = self.repoll
        return environ

    def repoll(self) -> None:
        """The next request on this connection is a long poll's re-poll:
        wait for it in turn (see :mod:`wsgi_push.repoll`)."""
        self.socket.repoll = True

    def write_nowait(self, data: bytes) -> int:
        """Write ``data`` as more of the response body without blocking (see
        :mod:`wsgi_push.nowait`): WROTE_ALL, WROTE_PART or WROTE_NOTHING."""
        if not self.headers_sent or "_sendall" in self.__dict__:  # a rest still pending
            return WROTE_NOTHING
        if self.response_use_chunked:
            data = frame_chunk(data)
        try:
            # The OS socket under gevent's, non-blocking: never waits.
            sent: int = self.socket._sock.send(data)
        except BlockingIOError:
            return WROTE_NOTHING
        except OSError as error:  # the client is gone: its own write finds out
            self.socket.failed = error
            return WROTE_NOTHING
        self.response_length += sent
        if sent == len(data):
            return WROTE_ALL
        if sent:
            # The rest goes first on the next write: pywsgi's _sendall, wrapped
            # for that one call only (the usual write path stays untouched).
            rest = data[sent:]

            def sendall_after_rest(data: bytes) -> None:
                del self._sendall
                self._sendall(rest + data)

            self._sendall = sendall_after_rest
            return WROTE_PART
        return WROTE_NOTHING

    def read_requestline(self) -> str:
        line: str = self.receive_request(super().read_requestline)
        return line

    def receive_request(self, receive: Callable[[], Any]) -> Any:
        """``receive()``, the wait for a request's first bytes: a closed
        server takes no further request on a kept-alive connection, and one
        idle here is ended at once by PushServer.stop()."""
        if self.server.closed:
            return ""
        waiting = self.server.between_requests
        waiting.add(gevent.getcurrent())
        sock = self.socket
        try:
            if self.fast and sock.__class__ is PushSocket and sock.repoll:
                # Nothing read ahead (llhttp's path reads only then), and a
                # re-poll can't be there yet: wait first, saving a recv().
                sock._wait(sock._read_event)
            return receive()
        finally:
            waiting.discard(gevent.getcurrent())
            if sock.__class__ is PushSocket:
                sock.repoll = False  # its body, and later requests, as usual

    def handle_error(self, exc_type: type[BaseException], value: BaseException, tb: Any) -> None:
        if self.headers_sent and issubclass(exc_type, TimeoutError):
            self.close_connection = True
            PROCESS_COUNTERS.slow_clients_dropped += 1
            return
        super().handle_error(exc_type, value, tb)


class PushServer(pywsgi.WSGIServer):  # type: ignore[misc]
    """gevent's pywsgi server with ``TCP_NODELAY`` on every accepted connection
    and a socket timeout: a client whose socket takes no data for
    ``send_timeout`` seconds is disconnected (it can resume by id later), so
    a stuck reader holds nothing but its own greenlet for that long. The same
    timeout closes idle kept-alive connections. ``send_buffer`` caps the
    kernel's send buffer per connection (None: the kernel's autotuning).

    :meth:`stop` waits for requests in progress (gevent's server waits only
    for a pool's, and a pool entry costs ~1 KiB per connection: a deque of
    links on each greenlet)."""

    handler_class = PushHandler
    send_timeout: float | None = DEFAULT_SEND_TIMEOUT
    send_buffer: int | None = DEFAULT_SEND_BUFFER

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        space_full_collections()
        self.access_log = kwargs.get("log", "default") is not None
        self.environ[SOCKET_TUNED] = True  # handle() does it: the middleware need not
        self.handlers: set[gevent.Greenlet] = set()  # one per open connection
        # Those reading the next request line of a kept-alive connection:
        # nothing is in progress there, so stop() ends them first.
        self.between_requests: set[gevent.Greenlet] = set()

    def stop(self, timeout: float | None = None) -> None:
        """Stop accepting, close idle kept-alive connections, then wait up to
        ``timeout`` seconds for requests in progress before killing them."""
        self.close()
        gevent.killall(list(self.between_requests), block=False)
        wait = self.stop_timeout if timeout is None else timeout
        gevent.joinall(list(self.handlers), timeout=wait)
        gevent.killall(list(self.handlers), timeout=1)

    def do_read(self) -> tuple[PushSocket, Any] | None:
        """gevent's, but the accepted connection is a :class:`PushSocket` at
        once (wrapping gevent's socket again cost a second socket object)."""
        listener = self.socket  # the stdlib socket under gevent's
        try:
            fd, address = listener._accept()
        except BlockingIOError:  # nothing (more) queued
            return None
        return PushSocket(listener.family, listener.type, listener.proto, fileno=fd), address

    def handle(self, sock: socket.socket, address: Any) -> None:
        self.tune_socket(sock, self.send_timeout, self.send_buffer)
        handler = gevent.getcurrent()
        self.handlers.add(handler)
        try:
            super().handle(sock, address)
        finally:
            self.handlers.discard(handler)

    @staticmethod
    def tune_socket(
        sock: socket.socket,
        send_timeout: float | None = DEFAULT_SEND_TIMEOUT,
        send_buffer: int | None = DEFAULT_SEND_BUFFER,
    ) -> None:
        """Nagle off, bounded send buffer, send timeout: what a push connection needs."""
        # Not TCP (a Unix socket) refuses it; asking sock.family first costs more.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if send_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
        sock.settimeout(send_timeout)


def make_server(
    app: WSGIApplication,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    backlog: int = DEFAULT_BACKLOG,
    send_timeout: float | None = DEFAULT_SEND_TIMEOUT,
    send_buffer: int | None = DEFAULT_SEND_BUFFER,
    access_log: bool = True,
    **server_options: Any,
) -> PushServer:
    """A :class:`PushServer` bound to ``host:port`` (port 0 picks a free one).

    ``server_options`` go to ``pywsgi.WSGIServer``. Call ``serve_forever()``
    or ``start()`` on it.
    """
    if not access_log:
        server_options["log"] = None
    server = PushServer((host, port), app, backlog=backlog, **server_options)
    server.send_timeout = send_timeout
    server.send_buffer = send_buffer
    return server


def serve(
    app: WSGIApplication,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    stop_timeout: float = DEFAULT_STOP_TIMEOUT,
    **server_options: Any,
) -> None:
    """Serve ``app`` until SIGTERM or SIGINT, then stop within ``stop_timeout`` seconds."""
    run_until_signalled(make_server(app, host, port, **server_options), stop_timeout)


def run_until_signalled(server: PushServer, stop_timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
    """Run ``server`` (started or not) until SIGTERM or SIGINT, then shut down
    gracefully: stop accepting, end every push connection so that clients
    reconnect to a live process at once, and give other requests up to
    ``stop_timeout`` seconds."""

    def shut_down() -> None:
        # Closing wakes serve_forever(), which then runs stop(stop_timeout):
        # the drain must come first, with no switch in between.
        server.close()
        drain_all()

    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, gevent.spawn, shut_down)
    server.serve_forever(stop_timeout)
