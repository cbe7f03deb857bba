"""An app that answers with its WSGI environ's text entries as JSON (and the
body it read), for comparing servers' request parsing."""

from __future__ import annotations

import json
from typing import Any


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = environ["wsgi.input"].read()
    entries = {key: value for key, value in environ.items() if isinstance(value, str)}
    for key in ("REMOTE_PORT", "SERVER_PORT"):  # differ between connections / servers
        entries.pop(key, None)
    answer = json.dumps({"environ": entries, "body": body.decode("latin-1")}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [answer]
