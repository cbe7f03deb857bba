"""Reading what a request asks for, with bounds, into plain values.

Every parser raises :class:`~wsgi_push.errors.BadRequest` (400) or
:class:`~wsgi_push.errors.PayloadTooLarge` (413) with a message that names
the parameter but never echoes unbounded input.
"""

from __future__ import annotations

import json
import math
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from .errors import BadRequest, PayloadTooLarge
from .message import check_channel

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

_POSITION = re.compile(r"[0-9]{1,18}")
MAX_QUERY_FIELDS = 32


def query_params(environ: WSGIEnvironment) -> dict[str, str]:
    """The query string as a dict (first value of each name wins), as
    ``parse_qsl(..., keep_blank_values=True)`` reads it."""
    query = environ.get("QUERY_STRING", "")
    if not query:
        return {}
    if "%" in query or "+" in query:
        return _unquoted_params(query)
    # Nothing to unquote (the usual ``since=N&timeout=M``): parse_qsl's
    # splitting without its per-field unquote calls.
    fields = query.split("&")
    if len(fields) > MAX_QUERY_FIELDS:
        raise _too_many_fields()
    params: dict[str, str] = {}
    for field in fields:
        if field:  # parse_qsl skips empty fields
            name, _, value = field.partition("=")
            params.setdefault(name, value)
    return params


def _unquoted_params(query: str) -> dict[str, str]:
    try:
        pairs = parse_qsl(query, keep_blank_values=True, max_num_fields=MAX_QUERY_FIELDS)
    except ValueError:
        raise _too_many_fields() from None
    params: dict[str, str] = {}
    for name, value in pairs:
        params.setdefault(name, value)
    return params


def _too_many_fields() -> BadRequest:
    return BadRequest(f"too many query parameters (at most {MAX_QUERY_FIELDS})")


def parse_position(value: str | None, name: str) -> int | None:
    """A resume position: None when absent, else a non-negative integer."""
    if value is None:
        return None
    if value.isdigit() and value.isascii() and len(value) <= 18:  # the usual case, no regex
        return int(value)
    if not _POSITION.fullmatch(value.strip()):
        raise BadRequest(f"{name} must be a non-negative integer")
    return int(value)


def parse_channels(names: str, max_channels: int) -> tuple[str, ...]:
    """The channels of a subscription path: one name, or a comma-separated
    list of distinct names (a multiplexed subscription)."""
    channels = tuple(names.split(","))
    if len(channels) > max_channels:
        raise BadRequest(f"too many channels: at most {max_channels} per subscription")
    for channel in channels:
        if not channel and len(channels) > 1:
            raise BadRequest("empty channel name in the list")
        try:
            check_channel(channel)
        except ValueError as error:
            raise BadRequest(str(error)) from None
    if len(channels) > 1 and len(set(channels)) != len(channels):
        raise BadRequest("a channel appears twice in the list")
    return channels


def parse_cursor(value: str | None, name: str, channels: int) -> list[int | None]:
    """A resume position for each of ``channels`` channels (None: only new).

    One channel reads a plain position. Many read a cursor: one entry per
    channel, comma-separated, each empty or digits; a single entry applies
    to every channel.
    """
    if channels == 1:
        return [parse_position(value, name)]
    if value is None:
        return [None] * channels
    entries = value.split(",")
    if len(entries) == 1:
        entries *= channels
    elif len(entries) != channels:
        raise BadRequest(f"{name} must have one comma-separated entry per channel ({channels})")
    if not all(entry == "" or _POSITION.fullmatch(entry) for entry in entries):
        raise BadRequest(f"{name}: each entry must be empty or a non-negative integer")
    return [int(entry) if entry else None for entry in entries]


def parse_timeout(value: str | None, default: float) -> float:
    """A long-poll timeout in seconds: ``default`` when absent, capped by it."""
    if value is None:
        return default
    try:
        timeout = float(value)
    except ValueError:
        raise BadRequest("timeout must be a number of seconds") from None
    if not math.isfinite(timeout) or timeout < 0:
        raise BadRequest("timeout must be a finite number of seconds, 0 or more")
    return min(timeout, default)


def read_json_body(environ: WSGIEnvironment, max_bytes: int) -> Any:
    """Read and parse a JSON body of at most ``max_bytes``.

    A declared ``Content-Length`` over the limit is refused before reading;
    without one, at most ``max_bytes + 1`` bytes are read to tell.
    """
    # Optional whitespace around a field value is valid (RFC 9110, 5.5);
    # pywsgi passes it on.
    declared = (environ.get("CONTENT_LENGTH") or "").strip(" \t")
    if declared:
        if not (declared.isascii() and declared.isdigit()):
            raise BadRequest("Content-Length must be a non-negative integer")
        if int(declared) > max_bytes:
            raise PayloadTooLarge(f"request body over {max_bytes} bytes")
        body = _read(environ, int(declared))
    else:
        body = _read(environ, max_bytes + 1)
        if len(body) > max_bytes:
            raise PayloadTooLarge(f"request body over {max_bytes} bytes")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("request body must be JSON") from None
    except RecursionError:
        raise BadRequest("request body is nested too deeply") from None


def _read(environ: WSGIEnvironment, size: int) -> bytes:
    """Read up to ``size`` body bytes; a body cut short is the client's error."""
    try:
        body: bytes = environ["wsgi.input"].read(size)
    except OSError:
        # gevent's pywsgi raises this when the client ends the body before
        # its Content-Length (or mid-chunk); there is nothing to answer but 400.
        raise BadRequest("request body ended early") from None
    return body
