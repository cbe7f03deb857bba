"""The Flask-SSE peer, set up as its documentation says: the ``sse``
blueprint on a Flask app with ``REDIS_URL``, served by
``gunicorn -k gevent``. Flask-SSE publishes from Python
(``sse.publish(...)``); a one-line view makes that an HTTP publish, the way
the other servers are driven. Subscribers: ``GET /stream?channel=<ch>``."""

from __future__ import annotations

import os

from flask import Flask, request
from flask_sse import sse

app = Flask(__name__)
app.config["REDIS_URL"] = os.environ["BENCH_REDIS_URL"]
app.register_blueprint(sse, url_prefix="/stream")


@app.post("/publish/<channel>")
def publish(channel: str) -> tuple[dict[str, bool], int]:
    sse.publish(request.get_data(as_text=True), channel=channel)
    return {"ok": True}, 201
