"""The pages and the few endpoints the demos post to."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, abort, current_app, render_template, request

from wsgi_push.flask import Push

from . import chat
from .publishers import RateFeed

views = Blueprint("demos", __name__)


@dataclass(frozen=True)
class Demo:
    """What the views need, kept in ``app.extensions["example_app"]``."""

    push: Push
    feed: RateFeed


def demo() -> Demo:
    state: Demo = current_app.extensions["example_app"]
    return state


@views.get("/")
def index() -> str:
    return render_template("index.html")


@views.get("/clock")
def clock() -> str:
    return render_template("clock.html")


@views.get("/feed")
def feed() -> str:
    return render_template("feed.html")


@views.post("/feed/rate")
def feed_rate() -> tuple[str, int]:
    """Body ``{"rate": messages per second}``, or ``{"rate": null}`` to swing."""
    rate = _json_body().get("rate")
    if rate is not None and not isinstance(rate, int | float):
        abort(400, "rate must be a number or null")
    try:
        demo().feed.set_rate(rate)
    except ValueError as error:
        abort(400, str(error))
    return "", 204


@views.get("/chat")
def chat_page() -> str:
    return render_template("chat.html", name_limit=chat.NAME_LIMIT, text_limit=chat.TEXT_LIMIT)


@views.post("/chat/messages")
def chat_message() -> tuple[dict[str, int], int]:
    """Body ``{"name", "text"}``; both are cut to the chat's limits, then broadcast."""
    return _say(chat.CHANNEL)


@views.get("/rooms")
def rooms() -> str:
    return render_template(
        "rooms.html", rooms=chat.ROOMS, name_limit=chat.NAME_LIMIT, text_limit=chat.TEXT_LIMIT
    )


@views.post("/rooms/<room>/messages")
def room_message(room: str) -> tuple[dict[str, int], int]:
    """Like ``/chat/messages``, into one of the rooms."""
    if room not in chat.ROOMS:
        abort(404, f"no room {room!r}; the rooms are {', '.join(chat.ROOMS)}")
    return _say(chat.room_channel(room))


@views.get("/dashboard")
def dashboard() -> str:
    return render_template("dashboard.html", text_limit=chat.TEXT_LIMIT)


@views.get("/connections")
def connections() -> dict[str, dict[str, int]]:
    """The push connections this process has open, by transport: open the
    dashboard in many tabs and it stays at one."""
    counts = demo().push.middleware.stats_snapshot()["open_connections"]
    return {"open": {transport: n for transport, n in counts.items() if n}}


@views.get("/streaming")
def streaming() -> str:
    return render_template("streaming.html")


@views.get("/streaming/raw")
def streaming_raw() -> Response:
    """The NDJSON stream of channel ``hoge`` as ``text/plain``, so that a
    browser shows it as it grows instead of downloading it. The request is
    handed to the push middleware's own stream endpoint (query included, e.g.
    ``?since=0``); only the content type changes."""
    middleware = demo().push.middleware
    environ = {**request.environ, "PATH_INFO": f"{middleware.prefix}/stream/hoge"}
    answer: dict[str, str] = {}

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        answer["status"] = status

    body: Iterable[bytes] = middleware(environ, start_response)
    return Response(
        body,
        status=answer["status"],
        content_type="text/plain; charset=utf-8",
        headers={
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
            # Without it a browser may hold back text/plain to sniff its type.
            "X-Content-Type-Options": "nosniff",
        },
        direct_passthrough=True,
    )


def _say(channel: str) -> tuple[dict[str, int], int]:
    """Publish a chat line ``{"name", "text"}`` from the request body, cut to the limits."""
    body = _json_body()
    name, text = body.get("name"), body.get("text")
    if not isinstance(name, str) or not isinstance(text, str) or not chat.clean_text(text):
        abort(400, 'body must be {"name": str, "text": non-empty str}')
    data = {"name": chat.clean_name(name), "text": chat.clean_text(text)}
    return {"id": demo().push.publish(channel, data, "chat")}, 201


def _json_body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, "body must be a JSON object")
    return body
