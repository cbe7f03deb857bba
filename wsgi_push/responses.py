"""Responses built as data: ``(status, headers, body)``.

Handlers return a :data:`Response`; the middleware calls ``start_response``
in one place. Keeping responses as values makes handlers testable without a
server and keeps status lines and JSON bodies consistent.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from http import HTTPStatus
from typing import Any

from .errors import PushError
from .message import dumps

Headers = list[tuple[str, str]]
Response = tuple[str, Headers, Iterable[bytes]]


# Made once: building an HTTPStatus per request costs an Enum lookup each time.
_STATUS_LINES = {status.value: f"{status.value} {status.phrase}" for status in HTTPStatus}


def status_line(code: int) -> str:
    """``201`` -> ``"201 Created"``; ValueError for a code HTTP doesn't define."""
    line = _STATUS_LINES.get(code)
    return f"{code} {HTTPStatus(code).phrase}" if line is None else line


def json_response(code: int, payload: Any, headers: Iterable[tuple[str, str]] = ()) -> Response:
    """A complete JSON response with ``Content-Length``; never cached."""
    return json_body_response(code, dumps(payload).encode("utf-8"), headers)


def json_body_response(code: int, body: bytes, headers: Iterable[tuple[str, str]] = ()) -> Response:
    """:func:`json_response` for a body that is already encoded JSON."""
    return (
        status_line(code),
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            *headers,
        ],
        [body],
    )


def error_response(error: PushError) -> Response:
    """The contract's error shape: ``{"error": "..."}`` with the error's status."""
    return json_response(error.status, {"error": error.message}, error.headers)


class StreamBody:
    """The WSGI body of a stream: ``close()`` closes ``chunks`` and always
    runs ``on_close``, even if iteration never began.

    Iterating it iterates ``chunks`` itself, with no wrapper in between (as
    werkzeug's ``ClosingIterator`` has): every greenlet switch copies the
    waiting subscriber's C stack, so each level of it costs on every delivery.
    """

    __slots__ = ("_chunks", "_on_close")

    def __init__(self, chunks: Generator[bytes, None, None], on_close: Callable[[], None]) -> None:
        self._chunks = chunks
        self._on_close = on_close

    def __iter__(self) -> Generator[bytes, None, None]:
        return self._chunks

    def close(self) -> None:
        try:
            self._chunks.close()
        finally:
            self._on_close()
