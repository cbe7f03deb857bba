"""The htmx demo: server-rendered HTML fragments swapped into the page by
htmx's SSE extension, with no JavaScript of the app's own for the updates.

A greenlet renders a fragment with Jinja every ``HTMX_INTERVAL`` seconds
and publishes it as a string (an SSE ``data:`` payload goes out as its
text); the page's ``sse-swap`` elements append or replace it by event name.
Notes typed by visitors are rendered (escaped) on the server and published
the same way. htmx and its SSE extension are vendored under
``static/vendor/`` (see the README there).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import gevent
from flask import Blueprint, Flask, abort, render_template, request

from wsgi_push.flask import Push

from .publishers import Publish, now_iso
from .views import demo

CHANNEL = "htmx"
NOTE_LIMIT = 200

fragments = Blueprint("htmx", __name__)


def init_app(app: Flask, push: Push) -> None:
    """Register the page; with ``START_PUBLISHERS``, start the fragment publisher."""
    app.register_blueprint(fragments)
    if app.config["START_PUBLISHERS"]:
        render = _rendering_in(app)
        gevent.spawn(publish_fragments, push.publish, render, float(app.config["HTMX_INTERVAL"]))


def _rendering_in(app: Flask) -> Callable[..., str]:
    """``render_template`` usable outside a request (in the publisher's greenlet)."""

    def render(template: str, **context: object) -> str:
        with app.app_context():
            return render_template(template, **context)

    return render


def publish_fragments(publish: Publish, render: Callable[..., str], interval: float) -> None:
    """Every ``interval`` seconds: a numbered fragment (event ``fragment``,
    appended by the page) and the summary it replaces (event ``summary``)."""
    for number in itertools.count(1):
        at = now_iso()
        publish(CHANNEL, render("_htmx_fragment.html", number=number, at=at), "fragment")
        publish(CHANNEL, render("_htmx_summary.html", count=number, at=at), "summary")
        gevent.sleep(interval)


@fragments.get("/htmx")
def page() -> str:
    return render_template("htmx.html", note_limit=NOTE_LIMIT, channel=CHANNEL)


@fragments.post("/htmx/notes")
def note() -> tuple[str, int]:
    """Form field ``text`` (cut to :data:`NOTE_LIMIT`), rendered and published
    to every page as event ``note``."""
    text = request.form.get("text", "").strip()[:NOTE_LIMIT]
    if not text:
        abort(400, "text must not be empty")
    fragment = render_template("_htmx_note.html", text=text, at=now_iso())
    demo().push.publish(CHANNEL, fragment, "note")
    return "", 204


@fragments.post("/htmx/reconnect")
def reconnect() -> tuple[str, int]:
    """End every push connection of this process, as a deploy would: the
    browsers reconnect by themselves with ``Last-Event-ID`` and miss nothing."""
    demo().push.middleware.end_connections()
    return "", 204
