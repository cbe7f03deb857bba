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

Configuration: each key that is set becomes the option named beside it;
an unset key leaves that option's default, which lives in one place, the
signature of :class:`~wsgi_push.PushMiddleware` or of the broker. Keyword
options to ``Push`` win over config.

====================== ============================================
``PUSH_PREFIX``         ``PushMiddleware(prefix=)``
``PUSH_HEARTBEAT``      ``PushMiddleware(heartbeat=)``
``PUSH_POLL_TIMEOUT``   ``PushMiddleware(poll_timeout=)``
``PUSH_PUBLISH_TOKEN``  ``PushMiddleware(publish_token=)``
``PUSH_MAX_MESSAGES``   the broker's ``max_messages``
``PUSH_MAX_AGE``        the broker's ``max_age``
``PUSH_REDIS_URL``      a :class:`~wsgi_push.RedisBroker` on this URL,
                        shared by every process; unset: a
                        :class:`~wsgi_push.MemoryBroker`
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

# Config key -> keyword option; only the keys an app sets are passed on.
_MIDDLEWARE_CONFIG = {
    "PUSH_PREFIX": "prefix",
    "PUSH_HEARTBEAT": "heartbeat",
    "PUSH_POLL_TIMEOUT": "poll_timeout",
    "PUSH_PUBLISH_TOKEN": "publish_token",
}
_BROKER_CONFIG = {"PUSH_MAX_MESSAGES": "max_messages", "PUSH_MAX_AGE": "max_age"}


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
        self, app: Flask | None = None, *, broker: Broker | None = None, **middleware_options: Any
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
        options = {**_set_options(app.config, _MIDDLEWARE_CONFIG), **self._middleware_options}
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


def _set_options(config: Any, keys: dict[str, str]) -> dict[str, Any]:
    """The keyword options named by the config keys that are set."""
    return {option: config[key] for key, option in keys.items() if key in config}


def _broker_from_config(config: Any) -> Broker:
    retention = _set_options(config, _BROKER_CONFIG)
    redis_url = config.get("PUSH_REDIS_URL")
    if redis_url:
        return RedisBroker.from_url(redis_url, **retention)
    return MemoryBroker(**retention)
