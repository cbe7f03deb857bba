"""Serving the bundled JavaScript client at ``<prefix>/client.js``."""

from __future__ import annotations

import hashlib
from importlib.resources import files
from typing import TYPE_CHECKING

from .responses import Response, status_line

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment


class ClientScript:
    """The client script, read once, served with an ``ETag`` so that browsers
    cache it and revalidate cheaply (``304``)."""

    max_age = 3600

    def __init__(self) -> None:
        self.body = files("wsgi_push").joinpath("static/client.js").read_bytes()
        self.etag = f'"{hashlib.sha256(self.body).hexdigest()[:32]}"'

    def respond(self, environ: WSGIEnvironment) -> Response:
        headers = [
            ("ETag", self.etag),
            ("Cache-Control", f"public, max-age={self.max_age}"),
        ]
        if self.etag in environ.get("HTTP_IF_NONE_MATCH", ""):
            return status_line(304), headers, []
        headers += [
            ("Content-Type", "text/javascript; charset=utf-8"),
            ("Content-Length", str(len(self.body))),
        ]
        body = [] if environ.get("REQUEST_METHOD") == "HEAD" else [self.body]
        return status_line(200), headers, body
