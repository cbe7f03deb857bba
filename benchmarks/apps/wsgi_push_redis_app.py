"""wsgi_push on a RedisBroker, served by the gunicorn push worker:
``gunicorn -k wsgi_push.gunicorn.GeventWorker benchmarks.apps.wsgi_push_redis_app:app``
with ``BENCH_REDIS_URL`` naming the redis-server."""

from __future__ import annotations

import os

from benchmarks.apps.wsgi_push_app import HEARTBEAT, PUBLISH_TOKEN, not_found
from wsgi_push import PushMiddleware, RedisBroker

app = PushMiddleware(
    not_found,
    broker=RedisBroker.from_url(os.environ["BENCH_REDIS_URL"], max_messages=1000),
    publish_token=PUBLISH_TOKEN,
    heartbeat=HEARTBEAT,
    max_connections=20_000,
)
