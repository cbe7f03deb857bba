"""Responses built as data (``wsgi_push/responses.py``)."""

from __future__ import annotations

from collections.abc import Generator
from http import HTTPStatus

import pytest

from wsgi_push.errors import MethodNotAllowed
from wsgi_push.responses import StreamBody, error_response, status_line


def test_stream_body_iterates_its_chunks_and_closes_once_started_or_not() -> None:
    closed: list[str] = []

    def chunks() -> Generator[bytes, None, None]:
        try:
            yield b"one"
            yield b"two"
        finally:
            closed.append("chunks")

    started = StreamBody(chunks(), lambda: closed.append("on_close"))
    assert next(iter(started)) == b"one"
    started.close()
    assert closed == ["chunks", "on_close"]
    closed.clear()
    StreamBody(chunks(), lambda: closed.append("on_close")).close()
    assert closed == ["on_close"]  # a generator never started runs no finally


def test_error_response_is_json_with_the_error_headers() -> None:
    status, headers, body = error_response(MethodNotAllowed(("GET",)))
    assert status == status_line(405) == "405 Method Not Allowed"
    assert ("Allow", "GET") in headers and ("Content-Type", "application/json") in headers
    assert b"".join(body) == b'{"error":"method not allowed; use GET"}'


def test_status_line_for_every_status_and_none_for_an_unknown_code() -> None:
    for status in HTTPStatus:
        assert status_line(status.value) == f"{status.value} {status.phrase}"
    assert status_line(201) == "201 Created"
    with pytest.raises(ValueError):
        status_line(599)
