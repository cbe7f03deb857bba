"""Cross-origin access to the push endpoints from an allow-list of origins::

    PushMiddleware(app, cors=CorsPolicy(["https://app.example"], allow_credentials=True))

The policy adds its headers to every answer under the prefix and answers
preflights; the middleware asks it nothing else.
"""

from __future__ import annotations

import warnings
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

    def __init__(self, origins: Iterable[str], *, allow_credentials: bool = False) -> None:
        if isinstance(origins, str):
            # frozenset("https://a.example") would allow single characters.
            raise TypeError("origins must be a list of origins, not one string")
        self.origins = frozenset(origins)
        self.allow_credentials = allow_credentials
        self.any_origin = "*" in self.origins
        if self.any_origin and allow_credentials:
            raise ValueError("the origin '*' can't be combined with allow_credentials")

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


def deprecated_cors_options(
    cors: CorsPolicy | None, origins: Iterable[str] | None, credentials: bool | None
) -> CorsPolicy | None:
    """The policy that ``PushMiddleware``'s ``cors_origins`` and
    ``cors_credentials`` keywords (deprecated in 0.2, gone in 0.3) ask for."""
    warnings.warn(
        "PushMiddleware(cors_origins=..., cors_credentials=...) is deprecated and goes "
        "away in wsgi_push 0.3; use cors=CorsPolicy(origins, allow_credentials=...)",
        DeprecationWarning,
        stacklevel=3,  # the caller of PushMiddleware(...)
    )
    if cors is not None:
        raise TypeError("give either cors=CorsPolicy(...) or the deprecated cors_origins")
    if origins is None:  # as before: credentials without origins allowed nothing
        return None
    return CorsPolicy(origins, allow_credentials=bool(credentials))
