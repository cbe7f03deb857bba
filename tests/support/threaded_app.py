"""The middleware under werkzeug's threaded development server (what
``flask run`` uses), without gevent's monkey patching: one OS thread per
request, so waits and wake-ups cross threads.

``python -m tests.support.threaded_app`` prints the URL it serves on.
"""

from __future__ import annotations

from werkzeug.serving import make_server

from tests.support.apps import TOKEN, inner_app
from wsgi_push import PushMiddleware

app = PushMiddleware(inner_app, publish_token=TOKEN, heartbeat=30.0, expose_stats=True)

if __name__ == "__main__":
    server = make_server("127.0.0.1", 0, app, threaded=True)
    print(f"serving threaded on http://127.0.0.1:{server.server_port}", flush=True)
    server.serve_forever()
