"""The Flask extension: ``Push(app)`` or ``Push()`` + ``push.init_app(app)``.

::

    from flask import Flask
    from wsgi_push.flask import Push

    app = Flask(__name__)
    app.config["PUSH_PUBLISH_TOKEN"] = "s3cret"     # optional
    push = Push(app)

    @app.post("/say")
    def say():
        push.publish("chat", {"text": "hello"})
        return "", 204

Configuration (read with ``setdefault``; keyword options to ``Push`` win):

====================== ============================================
``PUSH_PREFIX``         URL prefix of the endpoints (``/push``)
``PUSH_HEARTBEAT``      idle seconds between heartbeats (15)
``PUSH_POLL_TIMEOUT``   longest long poll, seconds (25)
``PUSH_PUBLISH_TOKEN``  bearer token enabling HTTP publishing (None)
``PUSH_MAX_MESSAGES``   retained messages per channel (1000)
``PUSH_MAX_AGE``        retained seconds, or None (None)
``PUSH_REDIS_URL``      Redis URL for a :class:`~wsgi_push.RedisBroker`
                        shared by every process; None: in memory (None)
====================== ============================================

All per-app state lives in ``app.extensions["wsgi_push"]`` (the
:class:`~wsgi_push.PushMiddleware`); the extension object keeps none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import current_app, has_app_context

from .brokers.base import Broker
from .brokers.memory import MemoryBroker
from .brokers.redis import RedisBroker
from .middleware import PushMiddleware

if TYPE_CHECKING:
    from flask import Flask

EXTENSION_KEY = "wsgi_push"

_MIDDLEWARE_CONFIG = {
    "PUSH_PREFIX": ("prefix", "/push"),
    "PUSH_HEARTBEAT": ("heartbeat", 15.0),
    "PUSH_POLL_TIMEOUT": ("poll_timeout", 25.0),
    "PUSH_PUBLISH_TOKEN": ("publish_token", None),
}


class Push:
    """Flask extension that wraps ``app.wsgi_app`` in a :class:`PushMiddleware`.

    :param app: the Flask app, or None to call :meth:`init_app` later.
    :param broker: a broker to use for every app this extension is
        initialised on; also lets :meth:`publish` work outside an app context
        (e.g. in a background greenlet). None: built from config.
    :param middleware_options: further :class:`PushMiddleware` keyword
        arguments (``authorize``, ``on_subscribe``, ``max_connections`` …).
    """

    def __init__(
        self, app: Flask | None = None, broker: Broker | None = None, **middleware_options: Any
    ) -> None:
        self._broker = broker
        self._middleware_options = middleware_options
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Install the middleware on ``app``; refuses a second registration."""
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(
                "wsgi_push is already registered on this app; create Push once per app"
            )
        options = {
            option: app.config.setdefault(key, default)
            for key, (option, default) in _MIDDLEWARE_CONFIG.items()
        }
        options.update(self._middleware_options)
        broker = self._broker or _broker_from_config(app.config)
        middleware = PushMiddleware(app.wsgi_app, broker=broker, **options)
        app.wsgi_app = middleware  # type: ignore[method-assign]
        app.extensions[EXTENSION_KEY] = middleware

    @property
    def middleware(self) -> PushMiddleware:
        """The current app's middleware."""
        middleware: PushMiddleware = current_app.extensions[EXTENSION_KEY]
        return middleware

    @property
    def broker(self) -> Broker:
        """The current app's broker, or the one given to the constructor."""
        if has_app_context():
            return self.middleware.broker
        if self._broker is not None:
            return self._broker
        raise RuntimeError(
            "no app context: publish inside 'with app.app_context():' "
            "or give Push(broker=...) to publish from anywhere"
        )

    def publish(self, channel: str, data: Any, event: str | None = None) -> int:
        """Publish to ``channel``; returns the message id."""
        return self.broker.publish(channel, data, event)


def _broker_from_config(config: Any) -> Broker:
    max_messages = config.setdefault("PUSH_MAX_MESSAGES", 1000)
    max_age = config.setdefault("PUSH_MAX_AGE", None)
    redis_url = config.setdefault("PUSH_REDIS_URL", None)
    if redis_url:
        return RedisBroker.from_url(redis_url, max_messages=max_messages, max_age=max_age)
    return MemoryBroker(max_messages=max_messages, max_age=max_age)
