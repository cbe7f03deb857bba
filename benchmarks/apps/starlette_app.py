"""The sse-starlette peer: the idiomatic fan-out app for it.

Each SSE subscriber owns an ``asyncio.Queue`` registered under its channel
(under each of them for ``/sse/a,b,c``);
``POST /publish/<channel>`` puts the raw body into every queue of the
channel, and ``EventSourceResponse`` sends each as one ``data:`` event with a
ping every 15 s. Served by ``uvicorn benchmarks.apps.starlette_app:app``.
"""

from __future__ import annotations

import asyncio
import os
from collections import defaultdict

from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

PING = float(os.environ.get("BENCH_HEARTBEAT", "15"))
subscribers: dict[str, set[asyncio.Queue[str]]] = defaultdict(set)
last_id: dict[str, int] = defaultdict(int)


async def sse(request: Request) -> EventSourceResponse:
    # "a,b,c" follows several channels over one connection: the same queue
    # registered under each.
    channels = request.path_params["channel"].split(",")
    queue: asyncio.Queue[str] = asyncio.Queue()
    for channel in channels:
        subscribers[channel].add(queue)

    async def events():  # type: ignore[no-untyped-def]
        try:
            while True:
                yield await queue.get()
        finally:
            for channel in channels:
                subscribers[channel].discard(queue)

    return EventSourceResponse(events(), ping=PING)


async def publish(request: Request) -> JSONResponse:
    channel = request.path_params["channel"]
    data = (await request.body()).decode()
    last_id[channel] += 1
    for queue in subscribers.get(channel, ()):
        queue.put_nowait(data)
    return JSONResponse({"id": last_id[channel]}, status_code=201)


app = Starlette(
    routes=[
        Route("/sse/{channel}", sse),
        Route("/publish/{channel}", publish, methods=["POST"]),
    ]
)
