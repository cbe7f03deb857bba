"""App factories for the command line's tests (``python -m wsgi_push 'module:factory()'``)."""

from __future__ import annotations

from typing import Any

import gevent

from wsgi_push import PushMiddleware

# Printed (and flushed) when /slow has started, so a test knows a request is in progress.
SLOW_STARTED = "factories: slow request started"


def create_app(prefix: str = "/push", greeting: str = "hello") -> PushMiddleware:
    """The middleware at ``prefix`` around an app that answers ``greeting`` at ``/``
    and holds ``/slow`` for a minute (a request in progress at shutdown)."""

    def inner(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if environ["PATH_INFO"] == "/slow":
            print(SLOW_STARTED, flush=True)
            gevent.sleep(60)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [greeting.encode()]

    return PushMiddleware(inner, prefix=prefix)


class AppNeedingSetup:
    """A class whose instances are apps: named without a call, it is a factory."""

    def __init__(self, greeting: str = "hello") -> None:
        self.greeting = greeting

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [self.greeting.encode()]


def passthrough(*args: Any) -> list[bytes]:
    """Takes any arguments, like a decorator's wrapper: accepted as an app."""
    _environ, start_response = args
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"passed"]
