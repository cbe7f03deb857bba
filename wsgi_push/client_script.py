"""Serving the bundled JavaScript client: ``<prefix>/client.js`` (a classic
script), ``<prefix>/client.mjs`` (the same code as an ES module) and
``<prefix>/client.d.ts`` (its TypeScript declarations).

There is one source, ``static/client.js``: it defines ``var WsgiPush``, a
global in a classic script and a module-scoped name in a module, so the
module is that file with an ``export`` line appended (``python -m
wsgi_push.vendor`` copies it into a project that a bundler builds).
"""

from __future__ import annotations

import hashlib
from importlib.resources import files
from typing import TYPE_CHECKING

from .responses import Response, status_line

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

JAVASCRIPT = "text/javascript; charset=utf-8"
TYPESCRIPT = "application/typescript; charset=utf-8"
MODULE_EXPORTS = b"\nexport default WsgiPush;\nexport var subscribe = WsgiPush.subscribe;\n"


def static_file(name: str) -> bytes:
    """A file of the package's ``static/`` folder."""
    return files("wsgi_push").joinpath(f"static/{name}").read_bytes()


def module_source() -> bytes:
    """The client as an ES module: ``client.js`` plus its exports."""
    return static_file("client.js") + MODULE_EXPORTS


class StaticFile:
    """One file, read once, served with an ``ETag`` so that browsers cache
    it and revalidate cheaply (``304``)."""

    max_age = 3600

    def __init__(self, body: bytes, content_type: str) -> None:
        self.body = body
        self.content_type = content_type
        self.etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'

    def respond(self, environ: WSGIEnvironment) -> Response:
        headers = [
            ("ETag", self.etag),
            ("Cache-Control", f"public, max-age={self.max_age}"),
        ]
        if self.etag in environ.get("HTTP_IF_NONE_MATCH", ""):
            return status_line(304), headers, []
        headers += [
            ("Content-Type", self.content_type),
            ("Content-Length", str(len(self.body))),
        ]
        body = [] if environ.get("REQUEST_METHOD") == "HEAD" else [self.body]
        return status_line(200), headers, body


class ClientScript:
    """The client's files by route (``client.js``, ``client.mjs``, ``client.d.ts``)."""

    def __init__(self) -> None:
        self.files = {
            "client.js": StaticFile(static_file("client.js"), JAVASCRIPT),
            "client.mjs": StaticFile(module_source(), JAVASCRIPT),
            "client.d.ts": StaticFile(static_file("client.d.ts"), TYPESCRIPT),
        }
