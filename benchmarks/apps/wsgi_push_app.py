"""wsgi_push as benchmarked: PushMiddleware with a MemoryBroker in front of a
trivial WSGI app, HTTP publishing enabled with a fixed bearer token.

Served by ``python -m wsgi_push benchmarks.apps.wsgi_push_app:app``.
"""

from __future__ import annotations

import os

from wsgi_push import MemoryBroker, PushMiddleware

PUBLISH_TOKEN = "bench-token"
HEARTBEAT = float(os.environ.get("BENCH_HEARTBEAT", "15"))


def not_found(environ, start_response):  # type: ignore[no-untyped-def]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found"]


app = PushMiddleware(
    not_found,
    broker=MemoryBroker(max_messages=1000),
    publish_token=PUBLISH_TOKEN,
    heartbeat=HEARTBEAT,
    # The default cap is 10,000 connections; the 10,000-subscriber runs
    # also hold publisher connections, so lift it like the peers' limits.
    max_connections=20_000,
)
