"""The apps that tests serve, configured by environment variables.

``app`` is a plain WSGI app wrapped in PushMiddleware with a publish token,
plus test-only endpoints under ``/_test/`` to read the server's state and to
cut every open connection. ``inner_app`` is the wrapped app alone.
"""

from __future__ import annotations

import json
import os
from typing import Any

from wsgi_push import Broker, CorsPolicy, MemoryBroker, PushMiddleware, RedisBroker

TOKEN = "test-token"
CLOSES = {"count": 0}


def _setting(name: str, default: str) -> str:
    return os.environ.get("PUSH_TEST_" + name, default)


class _TrackedBody:
    """A streaming body that counts its close() calls."""

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = iter(chunks)

    def __iter__(self) -> _TrackedBody:
        return self

    def __next__(self) -> bytes:
        return next(self._chunks)

    def close(self) -> None:
        CLOSES["count"] += 1


def inner_app(environ: dict[str, Any], start_response: Any) -> Any:
    """The application under the middleware: a few ordinary responses."""
    path = environ.get("PATH_INFO", "")
    if path == "/app/stream":
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Inner", "yes")])
        return _TrackedBody([b"one\n", b"two\n", b"three\n"])
    if path == "/app/closes":
        body = json.dumps(CLOSES).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    if path == "/app/echo":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = json.dumps(
            {
                "method": environ["REQUEST_METHOD"],
                "path": path,
                "query": environ.get("QUERY_STRING", ""),
                "body": environ["wsgi.input"].read(length).decode(),
                "header": environ.get("HTTP_X_CUSTOM", ""),
            }
        ).encode()
        start_response("201 Created", [("Content-Type", "application/json"), ("Set-Cookie", "a=b")])
        return [body]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"inner app: not found"]


retention = {
    "max_messages": int(_setting("MAX_MESSAGES", "1000")),
    "max_age": float(_setting("MAX_AGE", "0")) or None,
}
broker: Broker = (
    RedisBroker.from_url(os.environ["PUSH_TEST_REDIS_URL"], **retention)
    if "PUSH_TEST_REDIS_URL" in os.environ
    else MemoryBroker(**retention)
)
REFUSED = set(filter(None, _setting("REFUSED_CHANNELS", "").split(",")))


def refuse_some(environ: dict[str, Any], channel: str, action: str) -> bool:
    """``authorize`` when PUSH_TEST_REFUSED_CHANNELS lists channels nobody may
    subscribe to; publishing still needs the token."""
    return not (action == "subscribe" and channel in REFUSED)


cors_origins = _setting("CORS_ORIGINS", "")
cors = (
    CorsPolicy(cors_origins.split(","), allow_credentials=_setting("CORS_CREDENTIALS", "") == "1")
    if cors_origins
    else None
)


push = PushMiddleware(
    inner_app,
    broker=broker,
    publish_token=_setting("PUBLISH_TOKEN", TOKEN) or None,
    heartbeat=float(_setting("HEARTBEAT", "15")),
    poll_timeout=float(_setting("POLL_TIMEOUT", "25")),
    max_message_bytes=int(_setting("MAX_MESSAGE_BYTES", "65536")),
    sse_retry=float(_setting("SSE_RETRY", "2")),
    max_connections=int(_setting("MAX_CONNECTIONS", "10000")),
    max_subscribers_per_channel=int(_setting("MAX_SUBSCRIBERS", "0")) or None,
    cors=cors,
    expose_stats=True,
    expose_metrics=True,
    authorize=refuse_some if REFUSED else None,
    max_batch_messages=int(_setting("MAX_BATCH_MESSAGES", "1000")),
)

CLIENT_PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>client test</title>
<script src="/push/client.js"></script></head><body></body></html>"""


def app(environ: dict[str, Any], start_response: Any) -> Any:
    """The middleware, plus ``/_test/state``, ``/_test/cut`` and ``/_test/client``."""
    path = environ.get("PATH_INFO", "")
    if path == "/_test/state":
        import gc

        from greenlet import greenlet

        channel = environ.get("QUERY_STRING", "")
        body = json.dumps(
            {
                "subscribers": broker.subscriber_count(channel),
                "pid": os.getpid(),
                "connections": dict(push.connections.open_by_transport),
                "greenlets": sum(1 for o in gc.get_objects() if isinstance(o, greenlet)),
                # This request's socket timeout, where the server names the socket.
                "socket_timeout": (
                    environ["gunicorn.socket"].gettimeout()
                    if "gunicorn.socket" in environ
                    else None
                ),
            }
        ).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    if path == "/_test/client":
        # An empty page with the JavaScript client, for the browser tests.
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [CLIENT_PAGE]
    if path == "/_test/cut":
        push.end_connections()
        start_response("204 No Content", [])
        return []
    return push(environ, start_response)
