"""Exceptions raised by wsgi_push.

One root, :class:`PushError`, with narrow subclasses. Each HTTP-facing error
carries the status it answers with, so the middleware turns any of them into
the contract's JSON error in one place.
"""

from __future__ import annotations


class PushError(Exception):
    """Root of every wsgi_push error. ``status`` is the HTTP status it maps to."""

    status = 500
    headers: tuple[tuple[str, str], ...] = ()

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(PushError, ValueError):
    """Malformed input: channel name, query parameter, header or body."""

    status = 400


class Unauthorized(PushError):
    """No credentials where the request needs them."""

    status = 401
    headers = (("WWW-Authenticate", 'Bearer realm="wsgi_push"'),)


class Forbidden(PushError):
    """Credentials given but refused, or ``authorize`` said no."""

    status = 403


class NotFound(PushError):
    """Unknown path under the prefix, or HTTP publishing disabled."""

    status = 404


class MethodNotAllowed(PushError):
    """Wrong HTTP method; answers with an ``Allow`` header."""

    status = 405

    def __init__(self, allowed: tuple[str, ...]) -> None:
        super().__init__("method not allowed; use " + ", ".join(allowed))
        self.headers = (("Allow", ", ".join(allowed)),)


class PayloadTooLarge(PushError):
    """Request body over ``max_message_bytes``."""

    status = 413


class ServiceUnavailable(PushError):
    """Over a configured limit, or a backend is down; answers with ``Retry-After``."""

    status = 503

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.headers = (("Retry-After", str(retry_after)),)


class BrokerUnavailable(ServiceUnavailable):
    """The broker's backend (e.g. Redis) cannot be reached right now."""


class TooManyChannels(ServiceUnavailable):
    """A new channel would exceed the broker's ``max_channels``."""
