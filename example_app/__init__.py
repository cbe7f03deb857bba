"""The example app: four live demos of wsgi_push in one Flask app.

``python -m example_app`` serves it (see ``__main__.py``). Each demo is one
of the systems in the project's scenarios: server events at random times,
a feed whose rate swings, a chat with presence, and an NDJSON stream.

Settings are ``EXAMPLE_*`` environment variables (JSON values) or the
``config`` mapping given to :func:`create_app`; the tests use them to make
the random and periodic publishers fast.
"""

from __future__ import annotations

from typing import Any

import gevent
from flask import Flask

from wsgi_push import MemoryBroker
from wsgi_push.flask import Push

from . import htmx
from .chat import Presence
from .publishers import RateFeed, publish_clock, publish_hoge
from .views import Demo, views

DEFAULTS: dict[str, Any] = {
    "CLOCK_MAX_INTERVAL": 10.0,  # seconds, upper bound of the random pause (scenario 1)
    "FEED_RATE": 1.0,  # messages per second at start (scenario 2)
    "FEED_SWING_SECONDS": 10.0,  # how long each rate lasts in "swing" mode
    "HOGE_INTERVAL": 1.0,  # seconds between NDJSON lines (scenario 4)
    "HTMX_INTERVAL": 2.0,  # seconds between the htmx page's fragments
    "MAX_MESSAGES": 1000,  # retained per channel
    "START_PUBLISHERS": True,
    # A short heartbeat, so a closed chat tab shows up as "offline" quickly:
    # the server only notices a vanished client when it writes to it.
    "PUSH_HEARTBEAT": 5.0,
    # Flask reads a request body whole: without a bound, one 200 MiB POST
    # costs that much memory. The demos' bodies are a few hundred bytes.
    "MAX_CONTENT_LENGTH": 64 * 1024,
}


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app; with ``START_PUBLISHERS`` the demo publishers run as greenlets."""
    app = Flask(__name__)
    app.config.from_mapping(DEFAULTS)
    app.config.from_prefixed_env("EXAMPLE")
    app.config.from_mapping(config or {})

    broker = MemoryBroker(max_messages=int(app.config["MAX_MESSAGES"]))
    presence = Presence(broker.publish)
    push = Push(app, broker=broker, on_subscribe=presence.joined, on_unsubscribe=presence.left)
    feed = RateFeed(push.publish, app.config["FEED_RATE"], app.config["FEED_SWING_SECONDS"])
    app.extensions["example_app"] = Demo(push=push, feed=feed)
    app.register_blueprint(views)
    htmx.init_app(app, push)

    if app.config["START_PUBLISHERS"]:
        gevent.spawn(publish_clock, push.publish, float(app.config["CLOCK_MAX_INTERVAL"]))
        gevent.spawn(publish_hoge, push.publish, float(app.config["HOGE_INTERVAL"]))
        gevent.spawn(feed.run)
    return app
