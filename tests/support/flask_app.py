"""A Flask app using the Push extension, with login-gated private channels.

``authorize`` reads the Flask session from the request environ: a channel
named ``private:<user>`` is open only to that logged-in user.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, request, session

from wsgi_push.flask import Push

app = Flask(__name__)
app.config.update(SECRET_KEY="test-only", PUSH_HEARTBEAT=0.5, PUSH_PUBLISH_TOKEN="test-token")


def authorize(environ: dict[str, Any], channel: str, action: str) -> bool:
    if not channel.startswith("private:"):
        return True
    user_session = app.session_interface.open_session(app, app.request_class(environ))
    return user_session is not None and user_session.get("user") == channel.split(":", 1)[1]


push = Push(app, authorize=authorize)


@app.post("/login/<user>")
def login(user: str) -> dict[str, str]:
    session["user"] = user
    return {"user": user}


@app.post("/say/<channel>")
def say(channel: str) -> tuple[dict[str, int], int]:
    return {"id": push.publish(channel, request.get_json()["text"], event="say")}, 201
