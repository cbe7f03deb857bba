"""The Flask extension: registration, configuration, publishing, and a live
app whose ``authorize`` uses the Flask session."""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import pytest
import requests
from flask import Flask

from tests.support.clients import sse_events
from tests.support.servers import ServerProcess, pywsgi_server
from wsgi_push import MemoryBroker, PushMiddleware
from wsgi_push.flask import Push


def test_push_wraps_wsgi_app_and_registers_the_extension() -> None:
    app = Flask(__name__)
    push = Push(app)
    middleware = app.extensions["wsgi_push"]
    assert isinstance(middleware, PushMiddleware) and app.wsgi_app is middleware
    with app.app_context():
        assert push.publish("news", {"a": 1}) == 1
        assert push.broker.read("news", 0).messages[0].data == {"a": 1}


def test_unset_config_keys_leave_the_defaults_of_the_signatures() -> None:
    """Each default lives in one place: the extension passes only the
    ``PUSH_*`` keys that are set, and writes none into the config."""
    app = Flask(__name__)
    Push(app)
    middleware = app.extensions["wsgi_push"]
    defaults = inspect.signature(PushMiddleware).parameters
    for option in ("prefix", "heartbeat", "poll_timeout"):
        assert getattr(middleware, option) == defaults[option].default
    assert defaults["publish_token"].default is None  # so HTTP publishing is off:
    assert app.test_client().post("/push/publish/news", json={"data": 1}).status_code == 404
    broker_defaults = inspect.signature(MemoryBroker).parameters
    assert middleware.broker.max_messages == broker_defaults["max_messages"].default
    assert middleware.broker.max_age == broker_defaults["max_age"].default
    assert not [key for key in app.config if key.startswith("PUSH_")]


def test_init_app_reads_config_and_options_win() -> None:
    app = Flask(__name__)
    app.config.update(PUSH_PREFIX="/live", PUSH_HEARTBEAT=3.0, PUSH_MAX_MESSAGES=7)
    push = Push(poll_timeout=4.0)
    push.init_app(app)
    middleware = app.extensions["wsgi_push"]
    assert (middleware.prefix, middleware.heartbeat, middleware.poll_timeout) == ("/live", 3.0, 4.0)
    assert middleware.broker.max_messages == 7
    response = app.test_client().get("/live/poll/x?timeout=0")
    assert response.status_code == 200 and response.json["messages"] == []


def test_double_registration_is_refused() -> None:
    app = Flask(__name__)
    Push(app)
    with pytest.raises(RuntimeError, match="already registered"):
        Push(app)


def test_publish_outside_an_app_context() -> None:
    with pytest.raises(RuntimeError, match="app context"):
        Push(Flask(__name__)).publish("news", 1)
    broker = MemoryBroker()
    push = Push(Flask(__name__), broker=broker)
    assert push.publish("news", 1) == 1 and broker.last_id("news") == 1


def test_one_extension_serves_several_apps_each_with_its_own_broker() -> None:
    push = Push()
    first, second = Flask("first"), Flask("second")
    push.init_app(first)
    push.init_app(second)
    with first.app_context():
        push.publish("c", "one")
    with second.app_context():
        assert push.broker.last_id("c") == 0


@pytest.fixture(scope="module")
def flask_server() -> Iterator[ServerProcess]:
    with pywsgi_server("tests.support.flask_app:app") as process:
        yield process


def test_view_publishes_and_sse_receives(flask_server: ServerProcess) -> None:
    with requests.get(f"{flask_server.url}/push/sse/room", stream=True, timeout=5) as response:
        events = sse_events(response)
        said = requests.post(f"{flask_server.url}/say/room", json={"text": "hi"}, timeout=5)
        assert said.status_code == 201
        event = next(events)
    assert (event.id, event.event, event.data) == (str(said.json()["id"]), "say", "hi")


def test_private_channel_needs_the_logged_in_user(flask_server: ServerProcess) -> None:
    url = f"{flask_server.url}/push/sse/private:ann"
    with requests.get(url, stream=True, timeout=5) as anonymous:
        assert anonymous.status_code == 403 and "not allowed" in anonymous.json()["error"]
    with requests.Session() as bob:
        bob.post(f"{flask_server.url}/login/bob", timeout=5)
        with bob.get(url, stream=True, timeout=5) as refused:
            assert refused.status_code == 403
    with requests.Session() as ann:
        ann.post(f"{flask_server.url}/login/ann", timeout=5)
        with ann.get(url, stream=True, timeout=5) as response:
            assert response.status_code == 200
            events = sse_events(response)
            ann.post(f"{flask_server.url}/say/private:ann", json={"text": "secret"}, timeout=5)
            assert next(events).data == "secret"
