"""Start real servers (pywsgi via ``python -m wsgi_push``, gunicorn) on loopback.

Each server is a subprocess we started ourselves; it is stopped by its pid.
Test apps are configured through environment variables (see ``apps.py``).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 20.0
_SERVING = re.compile(r"serving .* on (http://\S+?)/?$")


class ServerProcess:
    """A server subprocess; ``url`` is its base URL once started."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.argv = argv
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        self.process: subprocess.Popen[str] | None = None
        self.url = ""
        self.output: list[str] = []  # everything it printed, for diagnosis and assertions

    def start(self, ready_url: str | None = None) -> ServerProcess:
        self.process = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        if ready_url is None:
            self.url = self._read_url()
        else:
            self.url = ready_url
        # Keep draining the output: a full pipe would freeze the server.
        threading.Thread(target=self._drain_output, daemon=True).start()
        if ready_url is not None:
            wait_until(lambda: _answers(ready_url + "/"), START_TIMEOUT, "server to answer")
        return self

    def _drain_output(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)

    def tracebacks(self, through: str = "") -> list[str]:
        """Each logged traceback (with what follows it) that mentions ``through``,
        e.g. ``"/wsgi_push/"`` for exceptions raised in the package rather
        than the HTTP server's own refusals of malformed requests."""
        tracebacks: list[list[str]] = []
        for line in list(self.output):
            if line.startswith("Traceback"):
                tracebacks.append([])
            if tracebacks:
                tracebacks[-1].append(line)
        return [text for text in map("".join, tracebacks) if through in text]

    def _read_url(self) -> str:
        assert self.process is not None and self.process.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT
        lines = []
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            lines.append(line)
            match = _SERVING.search(line.strip())
            if match:
                return match.group(1)
        self.stop()
        raise RuntimeError("server did not start:\n" + "".join(lines))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        """Stop the server we started (by its pid) and return its exit code."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def pywsgi_server(
    app: str = "tests.support.apps:app", server_args: tuple[str, ...] = (), **env: str
) -> ServerProcess:
    """``python -m wsgi_push APP --port 0`` with the given test-app settings."""
    argv = [sys.executable, "-m", "wsgi_push", app, "--port", "0", "--no-access-log"]
    return ServerProcess([*argv, *server_args], env).start()


def gunicorn_server(
    port: int,
    app: str = "tests.support.apps:app",
    workers: int = 1,
    worker_class: str = "gevent",
    server_args: tuple[str, ...] = (),
    **env: str,
) -> ServerProcess:
    argv = [
        sys.executable, "-m", "gunicorn", "-k", worker_class, "-w", str(workers),
        "-b", f"127.0.0.1:{port}", "--graceful-timeout", "5", "--no-control-socket",
        *server_args, app,
    ]  # fmt: skip
    return ServerProcess(argv, env).start(ready_url=f"http://127.0.0.1:{port}")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _answers(url: str) -> bool:
    try:
        requests.get(url, timeout=1)
    except (requests.ConnectionError, requests.Timeout):  # accepted, workers still booting
        return False
    return True


def accepts_connections(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something listens on ``host:port`` (one bounded connect)."""
    import socket

    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def wait_until(condition: Any, timeout: float, what: str, interval: float = 0.02) -> Any:
    """Poll ``condition()`` until truthy (bounded); raise naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def server_state(server: ServerProcess, channel: str = "") -> dict[str, Any]:
    """The test app's ``/_test/state``: subscribers of ``channel``, open
    connections per transport, live greenlets."""
    state: dict[str, Any] = requests.get(f"{server.url}/_test/state?{channel}", timeout=5).json()
    return state


def subscriber_count(server: ServerProcess, channel: str) -> int:
    """The subscribers of ``channel`` as the server's broker counts them."""
    return int(server_state(server, channel)["subscribers"])


def open_connections(server: ServerProcess, transport: str | None = None) -> int:
    connections = server_state(server)["connections"]
    return int(sum(connections.values()) if transport is None else connections.get(transport, 0))


def tcp_connections(pid: int) -> list[tuple[int, int]]:
    """``(local port, remote port)`` of each loopback TCP connection process
    ``pid`` holds: its socket inodes (``/proc/<pid>/fd``) looked up in
    ``/proc/<pid>/net/tcp``."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    connections = []
    with open(f"/proc/{pid}/net/tcp") as table:
        for line in list(table)[1:]:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], fields[9]
            remote_port = int(remote.rsplit(":", 1)[1], 16)
            if inode in inodes and remote_port != 0:  # not a listening socket
                connections.append((int(local.rsplit(":", 1)[1], 16), remote_port))
    return connections
