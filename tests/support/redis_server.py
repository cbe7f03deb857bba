"""A real ``redis-server`` on a free loopback port, started and stopped by pid.

Missing ``redis-server`` fails the tests loudly (``.ci/run`` installs it);
they are never skipped.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support.servers import ServerProcess, free_port, wait_until

START_TIMEOUT = 10.0


class RedisServer:
    """One ``redis-server`` process in its own temporary directory.

    ``persistent`` turns on the append-only file, so data survives
    :meth:`restart` (as in a production setup); otherwise nothing is saved.
    """

    def __init__(self, persistent: bool = False) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.executable = executable
        self.persistent = persistent
        self.port = free_port()
        self.directory = tempfile.mkdtemp(prefix="wsgi_push-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def unix_socket(self) -> str:
        return str(Path(self.directory) / "redis.sock")

    def start(self) -> RedisServer:
        argv = [
            self.executable, "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", self.directory, "--save", "",
            "--unixsocket", self.unix_socket, "--unixsocketperm", "700",
            "--appendonly", "yes" if self.persistent else "no",
            "--appendfsync", "always",
        ]  # fmt: skip
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self._answers, START_TIMEOUT, f"redis-server on port {self.port}")
        return self

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"redis-server exited with {self.process.returncode}")
        try:
            return bool(self.client().ping())
        except redis.ConnectionError:
            return False

    def client(self, **options: Any) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=5, **options)

    def stop(self) -> None:
        """Stop our redis-server by its pid."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(Path(self.directory), ignore_errors=True)


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    """A fresh redis-server for the test module."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A client on an emptied database."""
    client = redis_server.client()
    client.flushall()
    yield client
    client.close()


# A push app on a RedisBroker, served in a subprocess: argv = Redis URL,
# "gevent" (pywsgi, monkey-patched) or "threaded" (werkzeug's threaded
# development server, as ``flask run``, not patched), then the JSON of the
# RedisBroker and PushMiddleware options.
_REDIS_APP = """
import json, sys
url, kind, broker_options, push_options = sys.argv[1], sys.argv[2], *map(json.loads, sys.argv[3:])
if kind == "gevent":
    from gevent import monkey; monkey.patch_all()
from tests.support.apps import TOKEN, inner_app
from wsgi_push import PushMiddleware, RedisBroker
broker = RedisBroker.from_url(url, **broker_options)
options = {"publish_token": TOKEN, "expose_stats": True, **push_options}
app = PushMiddleware(inner_app, broker=broker, **options)
if kind == "gevent":
    from gevent.pywsgi import WSGIServer
    server = WSGIServer(("127.0.0.1", 0), app, log=None)
    server.start()
else:
    from werkzeug.serving import make_server
    server = make_server("127.0.0.1", 0, app, threaded=True)
print(f"serving {kind} on http://127.0.0.1:{server.server_port}", flush=True)
server.serve_forever()
"""


def redis_app(
    redis_server: RedisServer,
    kind: str,
    broker_options: dict[str, Any] | None = None,
    **push_options: Any,
) -> ServerProcess:
    """A push app on ``RedisBroker(redis_server.url, **broker_options)``
    served by ``kind``: ``"gevent"`` (pywsgi, monkey-patched) or
    ``"threaded"`` (werkzeug's threaded development server, not patched)."""
    argv = [
        sys.executable, "-c", _REDIS_APP, redis_server.url, kind,
        json.dumps(broker_options or {}), json.dumps(push_options),
    ]  # fmt: skip
    return ServerProcess(argv).start()
