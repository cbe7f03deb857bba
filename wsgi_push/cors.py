"""Cross-origin access to the push endpoints from an allow-list of origins."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from .responses import Headers, Response, status_line

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

ALLOWED_REQUEST_HEADERS = "Authorization, Content-Type, Last-Event-ID"
PREFLIGHT_MAX_AGE = 600


class CorsPolicy:
    """Answers cross-origin requests from ``origins`` (exact matches).

    ``"*"`` allows any origin, but only without credentials: browsers refuse
    a wildcard on credentialed requests, and echoing any origin with
    credentials would let every site read the user's private channels.
    """

    def __init__(self, origins: Iterable[str], allow_credentials: bool = False) -> None:
        self.origins = frozenset(origins)
        self.allow_credentials = allow_credentials
        self.any_origin = "*" in self.origins
        if self.any_origin and allow_credentials:
            raise ValueError("cors_origins='*' can't be combined with credentials")

    def headers(self, environ: WSGIEnvironment) -> Headers:
        """Headers to add to any response under the prefix."""
        origin = environ.get("HTTP_ORIGIN")
        if self.any_origin:
            return [("Access-Control-Allow-Origin", "*")]
        headers = [("Vary", "Origin")]
        if origin is not None and origin in self.origins:
            headers.append(("Access-Control-Allow-Origin", origin))
            if self.allow_credentials:
                headers.append(("Access-Control-Allow-Credentials", "true"))
        return headers

    def preflight(self, environ: WSGIEnvironment, allowed: tuple[str, ...]) -> Response:
        """``204`` for an ``OPTIONS`` preflight; the browser checks the origin headers."""
        return (
            status_line(204),
            [
                ("Access-Control-Allow-Methods", ", ".join(allowed)),
                ("Access-Control-Allow-Headers", ALLOWED_REQUEST_HEADERS),
                ("Access-Control-Max-Age", str(PREFLIGHT_MAX_AGE)),
                ("Content-Length", "0"),
            ],
            [],
        )
