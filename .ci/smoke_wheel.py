"""Smoke test of an installed wsgi_push wheel; .ci/run runs it with the
Python of a clean virtual environment holding only ``wsgi_push[gunicorn]``.

It checks what only a built and installed package can get wrong: the data
files (client.js, py.typed) and the LICENSE are in the wheel, the metadata
carries the version of ``wsgi_push.__version__``, the ``wsgi-push`` console
script starts, serves the client and stops on SIGTERM, and the gunicorn
extra brings what the push worker imports. Standard library only.
"""

from __future__ import annotations

import importlib.metadata
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.request
from pathlib import Path

TIMEOUT = 20.0
APP_MODULE = """
from wsgi_push import PushMiddleware


def create_app(greeting):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [greeting.encode()]

    return PushMiddleware(app)
"""


def check_installed_files() -> str:
    import wsgi_push

    package = Path(wsgi_push.__file__).parent
    assert package.is_relative_to(sys.prefix), f"wsgi_push imported from {package}, not the venv"
    assert (package / "py.typed").is_file(), "py.typed missing"
    assert (package / "static" / "client.js").is_file(), "static/client.js missing"
    distribution = importlib.metadata.distribution("wsgi_push")
    assert distribution.version == wsgi_push.__version__, (
        f"metadata {distribution.version} != __version__ {wsgi_push.__version__}"
    )
    files = [str(path) for path in distribution.files or ()]
    assert any(path.endswith("/LICENSE") for path in files), "LICENSE missing from the wheel"
    runtime = {
        re.split(r"[<>=!~;\[ ]", req, maxsplit=1)[0]
        for req in distribution.requires or ()
        if "extra ==" not in req
    }
    assert runtime == {"gevent"}, f"runtime requirements {runtime}: only gevent is imported"
    return wsgi_push.__version__


def check_gunicorn_worker_loads() -> None:
    # gunicorn's gevent worker imports packaging at import time: the extra must bring it.
    import wsgi_push.gunicorn  # noqa: F401


def check_console_script(version: str) -> None:
    script = Path(sys.executable).parent / "wsgi-push"
    shown = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=TIMEOUT)
    assert shown.stdout == f"wsgi-push {version}\n", shown
    with tempfile.TemporaryDirectory() as workdir:
        (Path(workdir) / "smoke_app.py").write_text(APP_MODULE)
        server = subprocess.Popen(
            [script, "smoke_app:create_app('hi')", "--port", "0", "--no-access-log"],
            cwd=workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            url = serving_url(server)
            with urllib.request.urlopen(f"{url}/push/client.js", timeout=TIMEOUT) as response:
                assert response.status == 200
                assert "javascript" in response.headers["Content-Type"]
                assert b"WsgiPush" in response.read()
            with urllib.request.urlopen(f"{url}/", timeout=TIMEOUT) as response:
                assert response.read() == b"hi"
            server.send_signal(signal.SIGTERM)
            assert server.wait(TIMEOUT) == 0, "wsgi-push did not stop cleanly on SIGTERM"
        finally:
            if server.poll() is None:
                server.kill()
                server.wait(TIMEOUT)


def serving_url(server: subprocess.Popen[str]) -> str:
    """The URL the server prints once it listens (bounded wait)."""
    lines: queue.Queue[str] = queue.Queue()
    assert server.stdout is not None
    stdout = server.stdout
    threading.Thread(target=lambda: [lines.put(line) for line in stdout], daemon=True).start()
    seen = []
    while True:
        try:
            line = lines.get(timeout=TIMEOUT)
        except queue.Empty:
            raise AssertionError("wsgi-push did not start:\n" + "".join(seen)) from None
        seen.append(line)
        match = re.search(r"serving .* on (http://\S+?)/?$", line.strip())
        if match:
            return match.group(1)


def main() -> None:
    version = check_installed_files()
    check_gunicorn_worker_loads()
    check_console_script(version)
    print(f"smoke test of the wsgi_push {version} wheel: passed")


if __name__ == "__main__":
    main()
