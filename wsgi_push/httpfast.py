"""The fast HTTP/1.1 path of the project's own pywsgi server.

pywsgi reads a request line by line through a buffered file, parses the
head with the standard library's email parser and builds the environ in
several passes: for a push server, where every long-poll answer, reconnect
and HTTP publish is a new small request, that is most of the CPU a request
costs. With the optional ``speedups`` extra (``pip install
wsgi_push[speedups]``: ``httptools``, the llhttp binding uvicorn uses)
:class:`FastRequestMixin` reads each request with as few ``recv()`` calls as
it takes, has llhttp check and parse its head in one call, and builds the
environ directly; pywsgi still runs the app and writes the response, so
``start_response``, framing and error handling are pywsgi's own.

Anything out of the ordinary is handed to pywsgi's own reader, with the
bytes already read, for the rest of the connection: a head llhttp refuses (an
invalid header name, a stray CR, a bare LF, a doubtful ``Content-Length``,
an unknown HTTP version...), a chunked or very large body, ``Expect``, an
upgrade, HTTP/0.9. So odd input is judged exactly as before, and the environ
is the same on both paths (``tests/test_httpfast.py`` compares them). Set
``WSGI_PUSH_PURE_PYTHON=1`` to use pywsgi's reader even when httptools is
installed (to compare, or to rule it out).

:class:`FastResponseMixin` serves both paths: no access-log line formatted
for nothing, a sized response's head and body in one send, and the ``Date``
header formatted once a second.
"""

from __future__ import annotations

import io
import os
import re
import time
from collections.abc import Callable
from io import BytesIO
from typing import Any

from gevent.pywsgi import MAX_REQUEST_LINE, Input, format_date_time, unquote_latin1

try:
    import httptools
except ImportError:  # the pure-Python path: pywsgi's own reader
    httptools = None  # type: ignore[assignment]

#: The largest head (request line and headers) read on the fast path, and the
#: most header lines: a larger head goes to pywsgi, whose limits judge it.
MAX_HEAD = 65536
MAX_HEADERS = 100
#: The largest body read whole on the fast path (larger ones are streamed by
#: pywsgi's reader): well above a batch publish.
MAX_BODY = 1 << 20
# The versions pywsgi accepts (its own check raises IndexError on "HTTP/1").
_VERSION = re.compile(r"HTTP/(1\.[0-9]+|0\.9)")
# What llhttp is given instead of the real request line (read here, as
# pywsgi reads it: any method token and target reach the app).
_REQUEST_LINE = b"GET / HTTP/1.1\r\n"
_IGNORED = ("CONTENT_TYPE", "CONTENT_LENGTH")
# Request headers the fast path leaves to pywsgi (bodies it streams, 100
# Continue, upgrades).
_HANDED_OVER = ("transfer-encoding", "expect", "upgrade")
_NO_BODY = BytesIO()
_RECEIVE = 65536


def c_parser_enabled() -> bool:
    """Whether requests are read and parsed by llhttp in this process."""
    return httptools is not None and os.environ.get("WSGI_PUSH_PURE_PYTHON", "") in ("", "0")


class ParsedHeaders:
    """A request's headers as the environ takes them (``HTTP_*`` keys and
    values, in order), and the first value of the few the server itself
    reads (``first``, by lowercased name)."""

    __slots__ = ("environ_items", "first")

    def __init__(self, environ_items: list[tuple[str, str]], first: dict[str, str]) -> None:
        self.environ_items = environ_items
        self.first = first


class _Complete:
    """httptools' one callback here: llhttp checks the whole head, and the
    lines are split in Python (a callback per header cost more than that)."""

    __slots__ = ("complete",)

    def __init__(self) -> None:
        self.complete = False

    def on_headers_complete(self) -> None:
        self.complete = True


# Header names the server reads itself (framing, hand-over, the environ's
# CONTENT_* keys).
_READ_HERE = frozenset(
    ("content-length", "content-type", "connection", "transfer-encoding", "expect", "upgrade")
)
# Per header name as sent: its lowercased name, and its environ key (None:
# not an HTTP_ key). Bounded: names a client makes up are worked out each time.
_NAMES: dict[bytes, tuple[str, str | None]] = {}
_MAX_NAMES = 512


def _name_keys(name: bytes) -> tuple[str, str | None]:
    known = _NAMES.get(name)
    if known is not None:
        return known
    text = name.decode("latin-1")
    upper = text.replace("-", "_").upper()
    # pywsgi drops names with "_" (they'd alias dashed ones); CONTENT_* come
    # from ``first``.
    known = (text.lower(), None if "_" in text or upper in _IGNORED else "HTTP_" + upper)
    if len(_NAMES) < _MAX_NAMES:
        _NAMES[name] = known
    return known


def parse_header_lines(lines: bytes) -> ParsedHeaders | None:
    """The header lines of a head (after the request line, up to and with
    the blank line), checked by llhttp; None when it refuses them or the
    request asks for what only pywsgi's reader does.

    Once llhttp accepts them, each line is ``name ":" value`` with no folded
    continuation (it refuses those), so a split gives what its callbacks
    would: the name as sent and the value without surrounding whitespace.
    """
    complete = _Complete()
    try:
        httptools.HttpRequestParser(complete).feed_data(_REQUEST_LINE + lines)
    except (httptools.HttpParserError, httptools.HttpParserUpgrade):  # upgrades: pywsgi's
        return None
    if not complete.complete:
        return None
    environ_items: list[tuple[str, str]] = []
    first: dict[str, str] = {}
    for line in lines[:-4].split(b"\r\n") if len(lines) > 2 else ():
        name, _, raw_value = line.partition(b":")
        lower, key = _name_keys(name)
        value = raw_value.decode("latin-1").strip()
        if key is not None:
            environ_items.append((key, value))
        if lower in _READ_HERE and lower not in first:
            first[lower] = value
    for handed_over in _HANDED_OVER:
        if handed_over in first:
            return None
    if first.get("connection", "").lower() == "upgrade":
        return None
    return ParsedHeaders(environ_items, first)


class _Replay(io.RawIOBase):
    """The bytes the fast path already read, then the socket: what pywsgi's
    reader reads once a connection is handed over."""

    def __init__(self, pending: bytes, sock: Any) -> None:
        super().__init__()
        self._pending = pending
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._pending:
            count = min(len(buffer), len(self._pending))
            buffer[:count] = self._pending[:count]
            self._pending = self._pending[count:]
            return count
        return self._sock.recv_into(buffer)  # type: ignore[no-any-return]


class FastRequestMixin:
    """A pywsgi ``WSGIHandler`` mixin: requests read and parsed by llhttp
    when httptools is installed (see the module's docstring); without it,
    pywsgi's own reader, untouched."""

    socket: Any
    server: Any
    client_address: Any
    rfile: Any
    headers: Any
    read_buffer: int
    fast = c_parser_enabled()  # False for good once a connection is handed over
    _pending = b""  # read but not yet handled
    _body = b""  # the request's, until its environ is built
    #: Waits for the first bytes of the next request (PushHandler's: a
    #: stopping server ends connections idle there).
    receive_request: Callable[[Callable[[], bytes]], Any]

    def handle_one_request(self) -> Any:
        if not self.fast:
            return super().handle_one_request()  # type: ignore[misc]
        try:
            read = self._read_request()
        except OSError:  # reset, timed out: nothing to answer, as pywsgi
            return None
        if read is None:
            return None
        if not read:
            return self._hand_over()
        self.environ = self.get_environ()
        self.application = self.server.application
        self.handle_one_response()  # type: ignore[attr-defined]
        return None if self.close_connection else True

    def _receive(self) -> bytes:
        return self.socket.recv(_RECEIVE)  # type: ignore[no-any-return]

    def _read_request(self) -> bool | None:
        """Read one request (True; its body waits in ``_body``), None when
        the client has gone, or False to hand the connection over to pywsgi's
        reader."""
        pending = self._pending
        if not pending:
            pending = self.receive_request(self._receive)
            if not pending:
                return None
        end = pending.find(b"\r\n\r\n")
        if end < 0:  # the head comes in pieces: linear in its size, however small they are
            buffer = bytearray(pending)
            searched = 0
            while end < 0:
                if (
                    len(buffer) > MAX_HEAD
                    or buffer.find(b"\n\n", searched) >= 0
                    or buffer.find(b"\n\r\n", searched) >= 0
                ):
                    return self._keep(bytes(buffer))
                more = self._receive()
                if not more:
                    return self._keep(bytes(buffer))
                searched = max(0, len(buffer) - 3)
                buffer += more
                end = buffer.find(b"\r\n\r\n", searched)
            pending = bytes(buffer)
        head = pending[:end]
        lines = head.count(b"\r\n")
        if end > MAX_HEAD or lines > MAX_HEADERS:
            return self._keep(pending)
        if not lines == head.count(b"\n") == head.count(b"\r"):
            return self._keep(pending)  # a bare LF or CR: pywsgi reads lines its own way
        line_end = head.find(b"\r\n")
        request_line = (head if line_end < 0 else head[:line_end]).decode("latin-1").rstrip()
        words = request_line.split()
        if len(words) != 3 or line_end >= MAX_REQUEST_LINE or not _VERSION.fullmatch(words[2]):
            return self._keep(pending)
        headers = parse_header_lines(b"\r\n" if line_end < 0 else pending[line_end + 2 : end + 4])
        if headers is None:
            return self._keep(pending)
        command = words[0]
        length_text = headers.first.get("content-length")
        length = None if length_text is None else int(length_text)
        if length is not None and (length > MAX_BODY or (length and command == "HEAD")):
            return self._keep(pending)
        start = end + 4
        total = start + (length or 0)
        cut_short = False
        if len(pending) < total:
            buffer = bytearray(pending)
            while len(buffer) < total:
                try:
                    more = self._receive()
                except OSError:  # timed out, reset
                    more = b""
                if not more:
                    # The app reads what came, then pywsgi's end-of-body
                    # error, as when it reads the socket itself.
                    cut_short = True
                    break
                buffer += more
            pending = bytes(buffer)
        self._pending = pending[total:]
        self.requestline = request_line
        self.command, self.path, self.request_version = words
        self.headers = headers
        self.content_length = length
        connection = headers.first.get("connection")
        if self.request_version == "HTTP/1.1":
            self.close_connection = connection is not None and connection.lower() == "close"
        else:
            self.close_connection = connection is None or connection.lower() != "keep-alive"
        self.close_connection |= cut_short
        self._body = pending[start:total]
        return True

    def _keep(self, pending: bytes) -> bool:
        self._pending = pending
        return False

    def _hand_over(self) -> Any:
        """Hand the connection, with what was read of it, to pywsgi's reader."""
        self.fast = False
        self.rfile = io.BufferedReader(_Replay(self._pending, self.socket), self.read_buffer)
        self._pending = b""
        return super().handle_one_request()  # type: ignore[misc]

    def get_environ(self) -> dict[str, Any]:
        if not self.fast:
            return super().get_environ()  # type: ignore[misc,no-any-return]
        env: dict[str, Any] = self.server.get_environ()
        env["REQUEST_METHOD"] = self.command
        env["SCRIPT_NAME"] = ""
        path, _, query = self.path.partition("?")
        env["PATH_INFO"] = unquote_latin1(path) if "%" in path else path
        env["QUERY_STRING"] = query
        headers: ParsedHeaders = self.headers
        content_type = headers.first.get("content-type")
        if content_type is not None:
            env["CONTENT_TYPE"] = content_type
        length = headers.first.get("content-length")
        if length:
            env["CONTENT_LENGTH"] = length
        env["SERVER_PROTOCOL"] = self.request_version
        address = self.client_address
        if isinstance(address, tuple):
            env["REMOTE_ADDR"] = str(address[0])
            env["REMOTE_PORT"] = str(address[1])
        for key, value in headers.environ_items:
            if key in env:
                env[key] += ("; " if "COOKIE" in key else ",") + value
            else:
                env[key] = value
        body, self._body = self._body, b""
        self.wsgi_input = Input(BytesIO(body) if body else _NO_BODY, self.content_length)
        env["wsgi.input"] = self.wsgi_input
        env["wsgi.input_terminated"] = True
        return env


class FastResponseMixin:
    """A pywsgi ``WSGIHandler`` mixin for both paths: no access-log line
    formatted for nothing, a sized response's head and body in one send, and
    the ``Date`` header formatted once a second."""

    headers_sent: bool
    response_use_chunked: bool
    provided_date: Any
    response_headers: list[tuple[bytes, bytes]]
    _sendall: Any

    def log_request(self) -> None:
        # pywsgi formats the access-log line even when it goes nowhere.
        if getattr(self.server, "access_log", True):  # type: ignore[attr-defined]
            super().log_request()  # type: ignore[misc]

    def finalize_headers(self) -> None:
        if self.provided_date is None:
            self.response_headers.append((b"Date", http_date()))
            self.provided_date = True  # pywsgi: don't add another
        super().finalize_headers()  # type: ignore[misc]

    def _write_with_headers(self, data: bytes) -> None:
        """pywsgi's, but a sized response's head and body go out in one
        send(): one syscall and one loopback segment fewer per long-poll
        answer or publish, and no body waiting behind the head for an ACK."""
        if not data:
            super()._write_with_headers(data)  # type: ignore[misc]
            return
        self.headers_sent = True
        self.finalize_headers()
        if self.response_use_chunked:  # decided by finalize_headers: pywsgi frames it
            self._sendall(self._head())
            self._write(data)  # type: ignore[attr-defined]
            return
        self._sendall(self._head() + data)

    def _head(self) -> bytearray:
        """The response's status line and headers, as pywsgi writes them."""
        head = bytearray(b"HTTP/1.1 ")
        head += self.status  # type: ignore[attr-defined]
        head += b"\r\n"
        for header, value in self.response_headers:
            head += header
            head += b": "
            head += value
            head += b"\r\n"
        head += b"\r\n"
        return head


_date_cache: tuple[int, bytes] = (0, b"")


def http_date() -> bytes:
    """The current time as an HTTP ``Date`` value, formatted once a second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, format_date_time(now))
    return _date_cache[1]


__all__ = [
    "FastRequestMixin",
    "FastResponseMixin",
    "ParsedHeaders",
    "c_parser_enabled",
    "http_date",
]
