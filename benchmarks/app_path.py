"""CPU per request of the WSGI app itself, in-process: no server, no sockets.

``python -m benchmarks.app_path [--requests 20000] [--repeat 5] [--kind publish ...]``

Calls the benchmarked app (:mod:`benchmarks.apps.wsgi_push_app`: a
``PushMiddleware`` over a ``MemoryBroker``) with ready-made environs and
prints the best-of-``repeat`` CPU time per request of each kind:

- ``publish``: ``POST /push/publish/c`` with the bearer token and ``{"data": 1}``;
- ``poll``: ``GET /push/poll/c?since=<last-1>&timeout=0``, answered at once
  (the same newest message each time: what the long polls one publish wakes do);
- ``publish-poll``: a publish, then a poll for it, in turn (per request);
- ``poll-empty``: a poll with nothing new and ``timeout=0`` (answers empty);
- ``poll-parked``: nothing new and ``timeout=0.001``: parks, then times out;
- ``sse-open``: ``GET /push/sse/c`` with ``Last-Event-ID``, up to its first chunk;
- ``poll-3``: a multiplexed poll of 3 channels, answered at once;
- ``poll-3-one``: the same with news in one of the 3 channels only.

What the server does per request (parsing, writing) is left out: see
:mod:`benchmarks.request_path` for that. Pin it (``taskset -c 1``) and
compare runs of the same machine only. On a busy machine count instructions
instead: the requests run under C's ``consume_iterator`` and nothing else
does, so ::

    valgrind --tool=callgrind --collect-atstart=no --toggle-collect=consume_iterator \\
        python -m benchmarks.app_path --kind poll --requests 500 --repeat 1

counts only the 500 requests (``I refs``, divide by 500).
"""

from __future__ import annotations

import argparse
import io
import time
from collections import deque
from collections.abc import Callable, Iterable
from itertools import repeat, starmap
from typing import Any

from benchmarks.apps.wsgi_push_app import PUBLISH_TOKEN, app

BASE_ENVIRON: dict[str, Any] = {
    "SERVER_NAME": "127.0.0.1",
    "SERVER_PORT": "8000",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "SERVER_SOFTWARE": "bench",
    "SCRIPT_NAME": "",
    "HTTP_HOST": "127.0.0.1",
    "HTTP_USER_AGENT": "bench",
    "HTTP_ACCEPT": "*/*",
    "REMOTE_ADDR": "127.0.0.1",
    "wsgi.url_scheme": "http",
    "wsgi.input": io.BytesIO(b""),
    # Leave Nagle alone: there is no socket (what wsgi_push.serve says too).
    "wsgi_push.socket_tuned": True,
}
PUBLISH_BODY = b'{"data": 1}'


def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
    """Accept the response head; the body is consumed by the caller."""


def get(path: str, query: str = "", **headers: str) -> dict[str, Any]:
    return {
        **BASE_ENVIRON,
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        **headers,
    }


def publish(channel: str) -> None:
    environ = {
        **BASE_ENVIRON,
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/push/publish/" + channel,
        "QUERY_STRING": "",
        "HTTP_AUTHORIZATION": "Bearer " + PUBLISH_TOKEN,
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(PUBLISH_BODY)),
        "wsgi.input": io.BytesIO(PUBLISH_BODY),
    }
    drain(app(environ, start_response))


def drain(body: Iterable[bytes]) -> None:
    for _chunk in body:
        pass


def sse_open(environ: dict[str, Any]) -> None:
    """The stream's first chunk, then the client goes away."""
    body = app(environ, start_response)
    next(iter(body))
    body.close()  # type: ignore[attr-defined]


def one_run(kind: str, requests: int) -> float:
    """CPU seconds per request of ``kind`` (the set-up left out)."""
    broker = app.broker
    for channel in ("c", "m1", "m2", "m3"):
        broker.publish(channel, 1)
    last = broker.last_id("c")
    step: Callable[[], None]
    if kind == "publish":
        step = lambda: publish("c")  # noqa: E731
    elif kind == "poll":
        environ = get("/push/poll/c", f"since={last - 1}&timeout=0")
        step = lambda: drain(app(environ, start_response))  # noqa: E731
    elif kind == "publish-poll":

        def step() -> None:
            publish("c")
            since = broker.last_id("c") - 1
            drain(app(get("/push/poll/c", f"since={since}&timeout=0"), start_response))

    elif kind == "poll-empty":
        environ = get("/push/poll/c", f"since={last}&timeout=0")
        step = lambda: drain(app(environ, start_response))  # noqa: E731
    elif kind == "poll-parked":
        environ = get("/push/poll/c", f"since={last}&timeout=0.001")
        step = lambda: drain(app(environ, start_response))  # noqa: E731
    elif kind == "sse-open":
        environ = get("/push/sse/c", HTTP_LAST_EVENT_ID=str(last - 1))
        step = lambda: sse_open(environ)  # noqa: E731
    elif kind == "poll-3":
        since = ",".join(str(broker.last_id(channel) - 1) for channel in ("m1", "m2", "m3"))
        environ = get("/push/poll/m1,m2,m3", f"since={since}&timeout=0")
        step = lambda: drain(app(environ, start_response))  # noqa: E731
    elif kind == "poll-3-one":
        since = ",".join(str(broker.last_id(channel)) for channel in ("m1", "m2"))
        environ = get("/push/poll/m1,m2,m3", f"since={since},{broker.last_id('m3') - 1}&timeout=0")
        step = lambda: drain(app(environ, start_response))  # noqa: E731
    else:
        raise ValueError(kind)
    per_step = 2 if kind == "publish-poll" else 1
    if kind == "poll-parked":
        requests = max(requests // 20, 1)  # each one waits 1 ms of wall time
    steps = max(requests // per_step, 1)
    started = time.process_time()
    deque(starmap(step, repeat((), steps)), maxlen=0)  # in C: see the module's docstring
    return (time.process_time() - started) / (steps * per_step)


KINDS = (
    "publish",
    "poll",
    "publish-poll",
    "poll-empty",
    "poll-parked",
    "sse-open",
    "poll-3",
    "poll-3-one",
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.app_path", description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--kind", action="append", choices=KINDS, help="default: all")
    config = parser.parse_args(argv)
    kinds = config.kind or KINDS
    best = dict.fromkeys(kinds, float("inf"))
    for _ in range(config.repeat):  # round robin: a busy spell hits every kind alike
        for kind in kinds:
            best[kind] = min(best[kind], one_run(kind, config.requests))
    for kind in kinds:
        print(f"{kind:12} {best[kind] * 1e6:7.2f} us CPU per request")


if __name__ == "__main__":
    main()
