"""Request heads parsed in C, for the project's own pywsgi server.

pywsgi parses every request head with the standard library's email parser
(``http.client.parse_headers``): about a fifth of a small request's CPU in
the push server, before the app runs. With the optional ``speedups`` extra
(``pip install wsgi_push[speedups]``: ``httptools``, the llhttp binding
uvicorn uses) :class:`FastHeadMixin` reads the head's lines with the same
limits as pywsgi, parses them with llhttp in one call and hands pywsgi a
small headers object; without httptools the handler is pywsgi's own, byte
for byte. Set ``WSGI_PUSH_PURE_PYTHON=1`` to use pywsgi's parser even when
httptools is installed (to compare, or to rule it out).

The WSGI environ is the same either way: pywsgi's ``get_environ`` builds it,
the request line is read as pywsgi reads it (any method token and target
reach the app), and a head llhttp refuses (an invalid header name, a stray
CR, a bare LF, a doubtful ``Content-Length``...) is handed to pywsgi's own
parser, so odd input is judged exactly as before (a version pywsgi's own
check would crash on, like ``HTTP/1``, is a plain 400).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from io import BytesIO
from typing import Any

try:
    import httptools
except ImportError:  # the pure-Python path: pywsgi's own parser
    httptools = None  # type: ignore[assignment]

#: The same limits as pywsgi's parser (``http.client``'s) for header lines.
MAX_HEADER_LINE = 65536
MAX_HEADERS = 100
_END_OF_HEAD = (b"\r\n", b"\n", b"")
# The versions pywsgi accepts (its own check raises IndexError on "HTTP/1").
_VERSION = re.compile(r"HTTP/(1\.[0-9]+|0\.9)")
# What llhttp is given instead of the real request line (see read_request).
_REQUEST_LINE = b"GET / HTTP/1.1\r\n"
_IGNORED = ("CONTENT_TYPE", "CONTENT_LENGTH")


def c_parser_enabled() -> bool:
    """Whether request heads are parsed by llhttp in this process."""
    return httptools is not None and os.environ.get("WSGI_PUSH_PURE_PYTHON", "") in ("", "0")


class ParsedHeaders:
    """The request headers in the shape pywsgi and its callers use
    (``get``, ``getheader``, ``typeheader``, ``headers``, ``status``)."""

    __slots__ = ("items", "_first")
    status = ""  # pywsgi: a parse problem (none: llhttp raised already)

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self.items = items
        first: dict[str, str] = {}
        for name, value in items:
            first.setdefault(name.lower(), value)
        self._first = first

    def get(self, name: str, default: Any = None) -> Any:
        return self._first.get(name.lower(), default)

    getheader = get

    def __contains__(self, name: str) -> bool:
        return name.lower() in self._first

    def __delitem__(self, name: str) -> None:
        lowered = name.lower()
        self._first.pop(lowered, None)
        self.items = [(key, value) for key, value in self.items if key.lower() != lowered]

    @property
    def typeheader(self) -> str | None:
        return self._first.get("content-type")

    @property
    def headers(self) -> Iterator[str]:
        for name, value in self.items:
            yield f"{name}: {value}\r\n"


class _Head:
    """httptools' callbacks: the header list, as latin-1 text."""

    __slots__ = ("headers", "complete")

    def __init__(self) -> None:
        self.headers: list[tuple[str, str]] = []
        self.complete = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1"), value.decode("latin-1").strip()))

    def on_headers_complete(self) -> None:
        self.complete = True


class FastHeadMixin:
    """A pywsgi ``WSGIHandler`` mixin: request heads parsed by llhttp when
    httptools is installed (see the module's docstring); on both paths no
    access-log line formatted for nothing, and a sized response's head and
    body in one send."""

    rfile: Any
    headers: Any
    headers_sent: bool
    response_use_chunked: bool
    _sendall: Any

    def log_request(self) -> None:
        # pywsgi formats the access-log line even when it goes nowhere.
        if getattr(self.server, "access_log", True):  # type: ignore[attr-defined]
            super().log_request()  # type: ignore[misc]

    def _write_with_headers(self, data: bytes) -> None:
        """pywsgi's, but a sized response's head and body go out in one
        send(): one syscall and one loopback segment fewer per long-poll
        answer or publish, and no body waiting behind the head for an ACK."""
        if not data:
            super()._write_with_headers(data)  # type: ignore[misc]
            return
        self.headers_sent = True
        self.finalize_headers()  # type: ignore[attr-defined]
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
        for header, value in self.response_headers:  # type: ignore[attr-defined]
            head += header
            head += b": "
            head += value
            head += b"\r\n"
        head += b"\r\n"
        return head

    # Only with the C parser: otherwise pywsgi's own methods, untouched.
    if c_parser_enabled():

        def read_request(self, raw_requestline: str) -> bool:
            # The request line as pywsgi reads it (any method token, any target:
            # they are the app's to judge); llhttp parses the header lines.
            self.requestline = raw_requestline.rstrip()
            words = self.requestline.split()
            if len(words) == 2:  # HTTP/0.9: pywsgi's business
                return super().read_request(raw_requestline)  # type: ignore[misc,no-any-return]
            if len(words) != 3:
                raise ValueError(f"invalid request line: {raw_requestline!r}")
            self.command, self.path, self.request_version = words
            if not _VERSION.fullmatch(self.request_version):
                raise ValueError(f"invalid HTTP version: {raw_requestline!r}")
            lines = [_REQUEST_LINE]
            readline = self.rfile.readline
            for _ in range(MAX_HEADERS + 1):
                line = readline(MAX_HEADER_LINE + 1)
                if len(line) > MAX_HEADER_LINE:
                    raise ValueError("header line too long")
                lines.append(line)
                if line in _END_OF_HEAD:
                    break
            else:
                raise ValueError(f"more than {MAX_HEADERS} headers")
            self.headers = headers = self._parse_head(lines)
            if headers.status:
                raise ValueError(f"invalid headers: {headers.status}")
            if headers.get("transfer-encoding", "").lower() == "chunked":
                with contextlib.suppress(KeyError):
                    del headers["content-length"]
            length = headers.get("content-length")
            self.content_length = None if length is None else int(length)
            if self.content_length is not None and self.content_length < 0:
                raise ValueError(f"invalid Content-Length: {length!r}")
            if self.content_length and self.command == "HEAD":
                raise ValueError("Unexpected Content-Length")
            if self.request_version == "HTTP/1.1":
                self.close_connection = headers.get("connection", "").lower() == "close"
            else:
                self.close_connection = headers.get("connection", "close").lower() != "keep-alive"
            return True

        def _parse_head(self, lines: list[bytes]) -> Any:
            """The header lines parsed by llhttp; a head it refuses (a bad
            name, a stray CR, a bare LF, a Content-Length it doubts...) by
            pywsgi's own parser, so that odd input is judged exactly as before."""
            head = _Head()
            try:
                httptools.HttpRequestParser(head).feed_data(b"".join(lines))
            except httptools.HttpParserUpgrade:
                pass  # the head is complete; what follows is the app's business
            except httptools.HttpParserError:
                head.complete = False
            if head.complete:
                return ParsedHeaders(head.headers)
            return self.MessageClass(BytesIO(b"".join(lines[1:])), 0)  # type: ignore[attr-defined]

        def _headers(self) -> Iterator[tuple[str, str]]:
            """The ``HTTP_*`` environ entries, as pywsgi's own generator makes them."""
            if not isinstance(self.headers, ParsedHeaders):
                yield from super()._headers()  # type: ignore[misc]
                return
            for name, value in self.headers.items:
                if "_" in name:  # pywsgi drops these (they'd alias dashed ones)
                    continue
                key = name.replace("-", "_").upper()
                if key not in _IGNORED:
                    yield "HTTP_" + key, value


__all__ = ["FastHeadMixin", "ParsedHeaders", "c_parser_enabled"]
