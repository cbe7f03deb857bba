"""Who may subscribe and who may publish."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from .errors import Forbidden, NotFound, Unauthorized

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

Authorize = Callable[["WSGIEnvironment", str, str], bool]
SUBSCRIBE = "subscribe"
PUBLISH = "publish"
STATS = "stats"


class Gate:
    """Applies ``publish_token`` and the ``authorize(environ, channel, action)`` callback.

    Everyone may subscribe unless ``authorize`` says no. HTTP publishing is
    off (404) unless a token or a callback is configured; with a token, a
    request needs ``Authorization: Bearer <token>`` (401 without, 403 wrong).
    """

    def __init__(self, publish_token: str | None, authorize: Authorize | None) -> None:
        self._token = publish_token.encode("utf-8") if publish_token else None
        self._authorize = authorize

    @property
    def publishing_enabled(self) -> bool:
        return self._token is not None or self._authorize is not None

    def check(self, environ: WSGIEnvironment, channel: str, action: str) -> None:
        """Raise the right error unless ``action`` on ``channel`` is allowed."""
        self.check_credentials(environ, action)
        if not self.authorized(environ, channel, action):
            raise Forbidden(f"not allowed to {action} on this channel")

    def check_subscribe(self, environ: WSGIEnvironment, channels: Iterable[str]) -> None:
        """:meth:`check` of subscribing to each of ``channels``; without
        ``authorize`` everyone may, and nothing is called."""
        if self._authorize is not None:
            for channel in channels:
                self.check(environ, channel, SUBSCRIBE)

    def check_credentials(self, environ: WSGIEnvironment, action: str) -> None:
        """The checks before any channel is looked at: ``publish`` and
        ``stats`` need the token or ``authorize``; with neither configured
        they don't exist (404)."""
        if action in (PUBLISH, STATS):
            if not self.publishing_enabled:
                raise NotFound(
                    "publishing over HTTP is disabled"
                    if action == PUBLISH
                    else "stats need a publish_token or authorize"
                )
            if self._token is not None:
                _check_bearer_token(environ, self._token, action)

    def authorized(self, environ: WSGIEnvironment, channel: str, action: str) -> bool:
        """What ``authorize`` says of ``action`` on ``channel`` (yes without one)."""
        return self._authorize is None or bool(self._authorize(environ, channel, action))


def _check_bearer_token(environ: WSGIEnvironment, token: bytes, action: str) -> None:
    scheme, _, credentials = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        needing = "publishing needs" if action == PUBLISH else "stats need"
        raise Unauthorized(f"{needing} 'Authorization: Bearer <token>'")
    # WSGI carries header bytes as latin-1 text: back to the bytes sent.
    # Constant-time comparison: the token is a secret.
    if not hmac.compare_digest(credentials.strip().encode("latin-1", "replace"), token):
        raise Forbidden("wrong publish token")
