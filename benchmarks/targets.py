"""The servers under test: how to install, start, address and stop each one.

Every server runs as a child process pinned to core 0 with ``taskset``, on a
free loopback port, and is stopped by its pid.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "benchmarks" / "work"
SERVER_CORE = "0"
NCHAN_MODULE = Path("/usr/lib/nginx/modules/ngx_nchan_module.so")
# Scenarios every target of the first round takes part in.
BASE_SCENARIOS = frozenset({"idle", "fanout", "channels"})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server did not listen on port {port} within {timeout}s")


def rss_kib(pids: list[int]) -> int:
    """Resident memory of ``pids`` (KiB), from /proc."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


@dataclass
class Target:
    """One server under test."""

    name: str
    label: str
    sub_path: str  # printf format: %s prefix, %d channel number
    pub_path: str
    poll_path: str | None = None
    poll_flavour: str = "wsgi"
    pub_auth: str = ""
    pub_raw: bool = False
    mux_path: str | None = None  # printf format: %s the comma-joined channels
    batch_path: str | None = None
    ready_on_send: bool = False  # no response head before the first message
    scenarios: frozenset[str] = BASE_SCENARIOS
    unavailable: str | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    port: int = 0
    log: Path | None = None
    stop_signal: int = signal.SIGTERM

    # -- lifecycle ---------------------------------------------------------

    def command(self, port: int, heartbeat: float) -> list[str]:
        raise NotImplementedError

    def start(self, heartbeat: float = 15.0) -> None:
        self.port = free_port()
        self.log = WORK / f"{self.name}.log"
        env = dict(os.environ, BENCH_HEARTBEAT=str(heartbeat), PYTHONPATH=str(REPO))
        env.update(self.environment())
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                ["taskset", "-c", SERVER_CORE, *self.command(self.port, heartbeat)],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for_port(self.port, self.process)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(self.stop_signal)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def environment(self) -> dict[str, str]:
        """Extra environment for the server process."""
        return {}

    def server_pids(self) -> list[int]:
        """The processes whose CPU and memory are the server's."""
        assert self.process is not None
        return [self.process.pid]


def child_pids(parent: int, timeout: float = 5.0) -> list[int]:
    """The children of ``parent`` (an nginx or gunicorn master's workers)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            children = []
        if children:
            return [int(child) for child in children]
        time.sleep(0.1)
    return [parent]


class WsgiPushTarget(Target):
    def __init__(self) -> None:
        super().__init__(
            name="wsgi_push",
            label="wsgi_push (gevent pywsgi)",
            sub_path="/push/sse/%s%d",
            pub_path="/push/publish/%s%d",
            poll_path="/push/poll/%s%d",
            pub_auth="Bearer bench-token",
            mux_path="/push/sse/%s",
            batch_path="/push/publish",
            scenarios=BASE_SCENARIOS
            | {"idle-mux", "fanout-mux", "channels-batch", "longpoll", "storm"},
        )

    def command(self, port: int, heartbeat: float) -> list[str]:
        return [
            sys.executable,
            "-m",
            "wsgi_push",
            "benchmarks.apps.wsgi_push_app:app",
            "--port",
            str(port),
            "--no-access-log",
        ]


class WsgiPushPureTarget(WsgiPushTarget):
    """``python -m wsgi_push`` with pywsgi's own request parser (no llhttp):
    what the plain-pywsgi target is held to, and the C parser's gain."""

    def __init__(self) -> None:
        super().__init__()
        self.name = "wsgi_push-pure"
        self.label = "python -m wsgi_push, pure-Python request parser"
        self.scenarios = frozenset({"fanout", "channels"})

    def environment(self) -> dict[str, str]:
        return {"WSGI_PUSH_PURE_PYTHON": "1"}


class PlainPywsgiTarget(WsgiPushTarget):
    """The same app under a plain ``gevent.pywsgi.WSGIServer``, as users start one."""

    def __init__(self) -> None:
        super().__init__()
        self.name = "plain-pywsgi"
        self.label = "wsgi_push under plain gevent.pywsgi.WSGIServer"
        self.scenarios = frozenset({"idle", "fanout", "channels", "channels-batch"})

    def command(self, port: int, heartbeat: float) -> list[str]:
        return [sys.executable, "-m", "benchmarks.apps.plain_pywsgi", str(port)]


class StarletteTarget(Target):
    def __init__(self) -> None:
        super().__init__(
            name="sse-starlette",
            label="sse-starlette (uvicorn, uvloop)",
            sub_path="/sse/%s%d",
            pub_path="/publish/%s%d",
            pub_raw=True,
            mux_path="/sse/%s",
            scenarios=BASE_SCENARIOS | {"idle-mux", "fanout-mux"},
        )
        try:
            import sse_starlette  # noqa: F401
            import uvicorn  # noqa: F401
        except ImportError as error:
            self.unavailable = f"sse-starlette/uvicorn not importable: {error}"

    def command(self, port: int, heartbeat: float) -> list[str]:
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "benchmarks.apps.starlette_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
            "--backlog",
            "4096",
        ]


NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 20000;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
load_module {module};

events {{
    worker_connections 16384;
    use epoll;
    multi_accept on;
}}

http {{
    access_log off;
    client_body_temp_path {work}/nginx-tmp/body;
    proxy_temp_path {work}/nginx-tmp/proxy;
    fastcgi_temp_path {work}/nginx-tmp/fastcgi;
    uwsgi_temp_path {work}/nginx-tmp/uwsgi;
    scgi_temp_path {work}/nginx-tmp/scgi;
    keepalive_requests 1000000;
    nchan_shared_memory_size 512M;

    server {{
        listen 127.0.0.1:{port} backlog=4096;

        location ~ ^/sub/(\\w+)$ {{
            nchan_subscriber eventsource;
            nchan_channel_id $1;
            nchan_eventsource_ping_interval {heartbeat};
        }}
        location ~ ^/msub/([\\w,]+)$ {{
            nchan_subscriber eventsource;
            nchan_channel_id $1;
            nchan_channel_id_split_delimiter ",";
            nchan_eventsource_ping_interval {heartbeat};
        }}
        location ~ ^/lp/(\\w+)$ {{
            # NchanSubscriber.js reads multipart answers: every waiting
            # message in one answer, as our long poll does.
            nchan_subscriber longpoll;
            nchan_channel_id $1;
            nchan_longpoll_multipart_response on;
        }}
        location ~ ^/pub/(\\w+)$ {{
            nchan_publisher;
            nchan_channel_id $1;
            nchan_message_buffer_length 1000;
            nchan_message_timeout 1h;
        }}
    }}
}}
"""


class NchanTarget(Target):
    def __init__(self) -> None:
        super().__init__(
            name="nchan",
            label="Nchan (nginx, C)",
            sub_path="/sub/%s%d",
            pub_path="/pub/%s%d",
            poll_path="/lp/%s%d",
            poll_flavour="nchan",
            pub_raw=True,
            mux_path="/msub/%s",
            scenarios=BASE_SCENARIOS | {"idle-mux", "fanout-mux", "longpoll", "storm"},
        )
        self.nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(self.nginx).exists() or not NCHAN_MODULE.exists():
            self.unavailable = (
                "nginx or the Nchan module is not installed "
                "(apt-get install -y nginx libnginx-mod-nchan)"
            )

    def command(self, port: int, heartbeat: float) -> list[str]:
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (WORK / "nginx-tmp" / sub).mkdir(parents=True, exist_ok=True)
        conf = WORK / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(work=WORK, module=NCHAN_MODULE, port=port, heartbeat=int(heartbeat))
        )
        return [self.nginx, "-p", str(WORK), "-c", str(conf), "-e", str(WORK / "nginx-error.log")]

    def server_pids(self) -> list[int]:
        """The worker: the master only supervises it."""
        assert self.process is not None
        return child_pids(self.process.pid)

    def stop(self) -> None:
        """SIGTERM (nginx's fast stop) to the master, then to any worker of
        ours still there: every pid signalled is one this run started."""
        if self.process is None:
            return
        master = self.process.pid
        workers = [pid for pid in self.server_pids() if pid != master]
        super().stop()
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


class RedisTarget(Target):
    """A gunicorn app on its own redis-server, both pinned to the server core."""

    redis: subprocess.Popen[bytes] | None = None
    redis_port: int = 0
    stop_signal = signal.SIGINT

    def check_redis(self) -> None:
        if shutil.which("redis-server") is None:
            self.unavailable = self.unavailable or "redis-server is not installed"

    def environment(self) -> dict[str, str]:
        return {"BENCH_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0"}

    def start(self, heartbeat: float = 15.0) -> None:
        self.redis_port = free_port()
        self.redis = subprocess.Popen(
            ["taskset", "-c", SERVER_CORE, "redis-server", "--port", str(self.redis_port),
             "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--maxclients", "15000", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        wait_for_port(self.redis_port, self.redis)
        super().start(heartbeat)

    def gunicorn(self, port: int, worker: str, app: str) -> list[str]:
        return [
            sys.executable, "-m", "gunicorn", "-k", worker, "-w", "1",
            "--worker-connections", "20000", "--backlog", "4096",
            "-b", f"127.0.0.1:{port}", "--log-level", "warning", app,
        ]  # fmt: skip

    def server_pids(self) -> list[int]:
        """The gunicorn worker and redis-server (the master only supervises)."""
        assert self.process is not None and self.redis is not None
        return [*child_pids(self.process.pid), self.redis.pid]

    def stop(self) -> None:
        """gunicorn's quick shutdown (SIGINT): a graceful one would wait for
        Flask-SSE's endless streams. Then any worker of ours still there,
        and redis-server."""
        workers = []
        if self.process is not None and self.process.poll() is None:
            master = self.process.pid
            workers = [pid for pid in child_pids(master, timeout=0.5) if pid != master]
        super().stop()
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.redis is not None:
            self.redis.terminate()
            self.redis.wait(10)
            self.redis = None


class WsgiPushRedisTarget(RedisTarget):
    def __init__(self) -> None:
        super().__init__(
            name="wsgi_push-redis",
            label="wsgi_push, gunicorn push worker, RedisBroker",
            sub_path="/push/sse/%s%d",
            pub_path="/push/publish/%s%d",
            pub_auth="Bearer bench-token",
            scenarios=frozenset({"redis-fanout"}),
        )
        self.check_redis()

    def command(self, port: int, heartbeat: float) -> list[str]:
        return self.gunicorn(
            port, "wsgi_push.gunicorn.GeventWorker", "benchmarks.apps.wsgi_push_redis_app:app"
        )


class FlaskSSETarget(RedisTarget):
    def __init__(self) -> None:
        super().__init__(
            name="flask-sse",
            label="Flask-SSE (gunicorn gevent worker, Redis)",
            sub_path="/stream?channel=%s%d",
            pub_path="/publish/%s%d",
            pub_raw=True,
            ready_on_send=True,
            scenarios=frozenset({"redis-fanout"}),
        )
        try:
            import flask_sse  # noqa: F401
        except ImportError as error:
            self.unavailable = f"flask-sse not importable: {error}"
        self.check_redis()

    def command(self, port: int, heartbeat: float) -> list[str]:
        return self.gunicorn(port, "gevent", "benchmarks.apps.flask_sse_app:app")


def all_targets() -> list[Target]:
    return [
        WsgiPushTarget(),
        WsgiPushPureTarget(),
        PlainPywsgiTarget(),
        StarletteTarget(),
        NchanTarget(),
        WsgiPushRedisTarget(),
        FlaskSSETarget(),
    ]
