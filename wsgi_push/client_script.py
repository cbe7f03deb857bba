"""Serving the bundled JavaScript client: ``<prefix>/client.js`` (a classic
script), ``<prefix>/client.mjs`` (the same code as an ES module) and
``<prefix>/client.d.ts`` (its TypeScript declarations).

There is one source, ``static/client.js``: it defines ``var WsgiPush``, a
global in a classic script and a module-scoped name in a module, so the
module is that file with an ``export`` line appended. To vendor the module
into a project that a bundler builds::

    python -m wsgi_push.client_script static/vendor   # client.mjs + client.d.mts
"""

from __future__ import annotations

import hashlib
import sys
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

from .responses import Response, status_line

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

JAVASCRIPT = "text/javascript; charset=utf-8"
TYPESCRIPT = "application/typescript; charset=utf-8"
MODULE_EXPORTS = b"\nexport default WsgiPush;\nexport var subscribe = WsgiPush.subscribe;\n"


def _static(name: str) -> bytes:
    return files("wsgi_push").joinpath(f"static/{name}").read_bytes()


def module_source() -> bytes:
    """The client as an ES module: ``client.js`` plus its exports."""
    return _static("client.js") + MODULE_EXPORTS


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
            "client.js": StaticFile(_static("client.js"), JAVASCRIPT),
            "client.mjs": StaticFile(module_source(), JAVASCRIPT),
            "client.d.ts": StaticFile(_static("client.d.ts"), TYPESCRIPT),
        }

    def respond(self, environ: WSGIEnvironment, route: str = "client.js") -> Response:
        return self.files[route].respond(environ)


def write_module(folder: Path) -> list[Path]:
    """Write ``client.mjs`` and its declarations (``client.d.mts``, the name
    TypeScript looks for next to a ``.mjs``) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / "client.mjs", folder / "client.d.mts"]
    written[0].write_bytes(module_source())
    written[1].write_bytes(_static("client.d.ts"))
    return written


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m wsgi_push.client_script FOLDER")
    for path in write_module(Path(sys.argv[1])):
        print(path)
