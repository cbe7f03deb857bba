"""Django integration: settings, one line in ``wsgi.py``, ``publish()`` anywhere.

``settings.py`` (every key optional; a key left out keeps the default of
:class:`~wsgi_push.PushMiddleware` or of the broker)::

    WSGI_PUSH = {
        "BROKER_URL": "redis://127.0.0.1:6379/0",  # absent or None: in memory
        "MAX_MESSAGES": 1000,
        "AUTHORIZE": "live.permissions.can_access",
    }

``wsgi.py``::

    from django.core.wsgi import get_wsgi_application
    from wsgi_push.django import with_push

    application = with_push(get_wsgi_application())

A view or a management command::

    from wsgi_push.django import publish

    publish("news", {"title": "hi"})

``AUTHORIZE``, ``ON_SUBSCRIBE`` and ``ON_UNSUBSCRIBE`` are callables or
dotted paths to them, and receive Django's own request (with
``request.user`` and ``request.session``) where
:class:`~wsgi_push.PushMiddleware` passes the WSGI environ:
``can_access(request, channel, action) -> bool``.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.handlers.wsgi import WSGIRequest
from django.core.signals import setting_changed
from django.db import close_old_connections
from django.http import HttpRequest, HttpResponse
from django.utils.module_loading import import_string

from .auth import Authorize
from .brokers.base import Broker
from .brokers.memory import MemoryBroker
from .brokers.redis import RedisBroker
from .middleware import PresenceCallback, PushMiddleware

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication, WSGIEnvironment

__all__ = ["authorize", "django_request", "get_broker", "publish", "with_push"]

SETTING = "WSGI_PUSH"
# Keys that build the broker; every other key is a PushMiddleware option.
_BROKER_KEYS = {"BROKER_URL", "MAX_MESSAGES", "MAX_AGE", "BROKER_OPTIONS"}
# Options that name a callable taking the environ: they get the request instead.
_REQUEST_CALLBACKS = {"AUTHORIZE", "ON_SUBSCRIBE", "ON_UNSUBSCRIBE"}
_REQUEST_KEY = "wsgi_push.django.request"

_broker: Broker | None = None
_broker_lock = threading.Lock()


def _middleware_options() -> set[str]:
    """PushMiddleware's keyword options (read from its signature, so the
    defaults stay written once, there)."""
    parameters = inspect.signature(PushMiddleware.__init__).parameters
    return {name for name in parameters if name not in ("self", "app", "broker")}


def _config() -> dict[str, Any]:
    config = getattr(settings, SETTING, None) or {}
    if not isinstance(config, dict):
        raise ImproperlyConfigured(f"settings.{SETTING} must be a dict")
    known = _BROKER_KEYS | {name.upper() for name in _middleware_options()}
    unknown = sorted(set(config) - known)
    if unknown:
        raise ImproperlyConfigured(
            f"settings.{SETTING} has unknown keys {unknown}; known: {sorted(known)}"
        )
    return config


def get_broker() -> Broker:
    """This process's broker, built from settings on first use: the one
    :func:`with_push` serves and :func:`publish` publishes to."""
    global _broker
    with _broker_lock:
        if _broker is None:
            _broker = _broker_from_config(_config())
        return _broker


def _broker_from_config(config: dict[str, Any]) -> Broker:
    options = dict(config.get("BROKER_OPTIONS") or {})
    for key in ("MAX_MESSAGES", "MAX_AGE"):
        if key in config:
            options[key.lower()] = config[key]
    url = config.get("BROKER_URL")
    if url is None or url == "memory://":
        return MemoryBroker(**options)
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisBroker.from_url(url, **options)
    raise ImproperlyConfigured(
        f"settings.{SETTING}['BROKER_URL'] must be redis://, rediss://, unix:// or memory://"
    )


def publish(channel: str, data: Any, event: str | None = None) -> int:
    """Publish to ``channel`` on this process's broker; returns the message id.

    With the default in-memory broker only this process's subscribers get
    it; a management command (another process) needs a ``BROKER_URL``.
    """
    return get_broker().publish(channel, data, event)


def with_push(application: WSGIApplication) -> PushMiddleware:
    """``application`` (Django's WSGI handler) wrapped in a
    :class:`~wsgi_push.PushMiddleware` configured from ``settings.WSGI_PUSH``."""
    options: dict[str, Any] = {}
    for key, value in _config().items():
        if key in _BROKER_KEYS:
            continue
        if key in _REQUEST_CALLBACKS:
            check = import_string(value) if isinstance(value, str) else value
            value = authorize(check) if key == "AUTHORIZE" else _presence(check)
        options[key.lower()] = value
    return PushMiddleware(application, broker=get_broker(), **options)


def django_request(environ: WSGIEnvironment) -> HttpRequest:
    """Django's request for a push request's ``environ``, with ``session``
    and ``user`` set by Django's own session and authentication middleware.

    Built once per push request (a multiplexed subscription asks for every
    channel). Sessions are read, never saved; don't read the body, which
    belongs to the push endpoint.
    """
    request: HttpRequest | None = environ.get(_REQUEST_KEY)
    if request is None:
        # Imported here: they need the app registry, which wsgi.py sets up
        # after importing this module.
        from django.contrib.auth.middleware import AuthenticationMiddleware
        from django.contrib.sessions.middleware import SessionMiddleware

        request = WSGIRequest(environ)
        SessionMiddleware(_no_response).process_request(request)
        AuthenticationMiddleware(_no_response).process_request(request)
        environ[_REQUEST_KEY] = request
    return request


def authorize(check: Callable[[HttpRequest, str, str], bool]) -> Authorize:
    """Turn ``check(request, channel, action) -> bool`` into the environ
    based ``authorize`` that :class:`~wsgi_push.PushMiddleware` takes."""

    def authorize_request(environ: WSGIEnvironment, channel: str, action: str) -> bool:
        with _database_closed_after():
            return bool(check(django_request(environ), channel, action))

    return authorize_request


def _presence(callback: Callable[[HttpRequest, str, int], None]) -> PresenceCallback:
    def presence(environ: WSGIEnvironment, channel: str, count: int) -> None:
        with _database_closed_after():
            callback(django_request(environ), channel, count)

    return presence


@contextmanager
def _database_closed_after() -> Iterator[None]:
    """What Django's request handler does around a view: drop database
    connections that are too old or broken, before and after. A push
    request never goes through that handler, and each runs on a greenlet (or
    thread) of its own, so with a connection of its own."""
    close_old_connections()
    try:
        yield
    finally:
        close_old_connections()


def _no_response(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("only process_request() is used")


def _forget_broker(*, setting: str, **kwargs: Any) -> None:
    """A changed ``WSGI_PUSH`` (``override_settings`` in tests) means a new broker."""
    global _broker
    if setting == SETTING:
        with _broker_lock:
            _broker = None


setting_changed.connect(_forget_broker)
